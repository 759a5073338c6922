"""The demo corpus and the benchmark corpora: deterministic, and the planted problems really are in the files.

Counts are taken by parsing the written files here, independently of the generator, then compared with the manifest.
"""

from __future__ import annotations

import difflib
import gzip
import re
import subprocess
import sys
import zlib
from pathlib import Path

import orjson
import polars as pl
import pytest
import zstandard

from transforms.demo import DEMO_DATA, SAMPLE_FILES, TOXIC_PHRASES, write_demo_corpus
from transforms.schema import TWEET_SCHEMA

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # bench/ is not an installed package

from bench.corpus import v2_frame, write_text_corpus, write_v2_jsonl  # noqa: E402

URL = r"https?://\S+"
ARCHIVE_PREFIX = b"window.YTD.tweets.part0 = "


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    manifest = write_demo_corpus(out)
    return out, manifest


def _record(fmt: str, tweet_id: str, text: str, lang: str, retweet_of: str | None = None, v: str | None = None) -> dict:
    return {"format": fmt, "id": tweet_id, "text": text, "lang": lang, "retweet_of": retweet_of, "style": v}


def read_corpus(out: Path, manifest: dict) -> tuple[pl.DataFrame, dict[str, int]]:
    """Every readable tweet in the files (format, id, text, lang, retweet_of, style), and the broken records seen."""
    records, broken = [], {"broken_json_line": 0, "missing_text": 0, "invalid_utf8": 0}
    files = {f["format"]: out / f["path"] for f in manifest["files"] if not f.get("truncated")}

    for line in files["v2_pages"].read_bytes().splitlines():
        try:
            page = orjson.loads(line)
        except orjson.JSONDecodeError:
            broken["broken_json_line"] += 1
            continue
        for t in page["data"]:
            ref = next((r["id"] for r in t.get("referenced_tweets", []) if r["type"] == "retweeted"), None)
            records.append(_record("v2_pages", t["id"], t["text"], t["lang"], ref, "v2" if ref else None))

    for line in zstandard.ZstdDecompressor().decompress(files["v2_flat"].read_bytes()).splitlines():
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            broken["invalid_utf8"] += 1
            continue
        t = orjson.loads(line)
        if "text" not in t:
            broken["missing_text"] += 1
            continue
        ref = next((r["id"] for r in t.get("referenced_tweets", []) if r["type"] == "retweeted"), None)
        records.append(_record("v2_flat", t["id"], t["text"], t["lang"], ref, "v2" if ref else None))

    search = orjson.loads(gzip.decompress(files["v1_search"].read_bytes()))["statuses"]
    for fmt, statuses in (("v1_search", search), ("v1_array", orjson.loads(files["v1_array"].read_bytes()))):
        for s in statuses:
            ref = s["retweeted_status"]["id_str"] if "retweeted_status" in s else None
            records.append(_record(fmt, s["id_str"], s["text"], s["lang"], ref, "v1" if ref else None))

    archive = files["archive"].read_bytes()
    assert archive.startswith(ARCHIVE_PREFIX)
    for item in orjson.loads(archive[len(ARCHIVE_PREFIX):]):
        t = item["tweet"]
        records.append(_record("archive", t["id_str"], t["full_text"], t["lang"]))

    column_map = next(f["column_map"] for f in manifest["files"] if f["format"] == "csv")
    csv = pl.read_csv(files["csv"], infer_schema=False).rename({v: k for k, v in column_map.items()})
    records += [_record("csv", r["id"], r["text"], r["lang_hint"]) for r in csv.iter_rows(named=True)]
    return pl.DataFrame(records, schema={k: pl.String for k in records[0]}), broken


class Parsed:
    """The parsed corpus; its repr stays silent so a failing test never prints tweet texts."""

    def __init__(self, records: pl.DataFrame, broken: dict[str, int]):
        self.records, self.broken = records, broken

    def __repr__(self) -> str:
        return f"Parsed({self.records.height} records)"


@pytest.fixture(scope="module")
def corpus(demo):
    return Parsed(*read_corpus(*demo))

# Texts come from real tweets: every assertion below compares plain numbers, computed first, never frames or series
# (pytest would print them on failure).


def test_demo_is_deterministic(tmp_path):
    def written(seed: int, name: str) -> dict[str, bytes]:
        out = tmp_path / name
        write_demo_corpus(out, n_tweets=3000, seed=seed)
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    first, again, other = written(7, "a"), written(7, "b"), written(8, "c")
    names = sorted(first)
    assert names == sorted(again) == sorted(other)
    same = [name for name in names if first[name] == again[name]]
    differ = [name for name in names if first[name] != other[name]]
    assert same == names
    assert differ == names


def test_demo_has_every_tweet_once_in_six_formats(demo, corpus):
    out, manifest = demo
    records = corpus.records
    n_records, n_ids = records.height, records["id"].n_unique()
    numeric_ids = bool(records["id"].str.contains(r"^\d{18,19}$").all())
    assert manifest["n_tweets"] == n_records >= 20_000
    assert n_ids == n_records and numeric_ids
    per_format = dict(records.group_by("format").len().iter_rows())
    assert per_format == {f["format"]: f["tweets"] for f in manifest["files"] if not f.get("truncated")}
    assert len(per_format) == 6 and min(per_format.values()) >= 1000
    magic = {f["compression"]: (out / f["path"]).read_bytes()[:4] for f in manifest["files"] if f["compression"]}
    assert magic["gzip"][:2] == b"\x1f\x8b" and magic["zstd"] == b"\x28\xb5\x2f\xfd"


def test_demo_languages(demo, corpus):
    _, manifest = demo
    langs = dict(corpus.records.group_by("lang").len().iter_rows())
    assert langs == manifest["planted"]["languages"]
    assert sum(count >= 500 for count in langs.values()) >= 6


def test_demo_retweets(demo, corpus):
    _, manifest = demo
    records = corpus.records
    planted = manifest["planted"]["retweets"]
    structural = records.filter(pl.col("retweet_of").is_not_null())
    v1 = structural.filter(pl.col("style") == "v1").height
    v2 = structural.filter(pl.col("style") == "v2").height
    all_rt_text = bool(structural["text"].str.starts_with("RT @").all())
    text_only = records.filter(pl.col("retweet_of").is_null() & pl.col("text").str.starts_with("RT @")).height
    outside = structural.filter(~pl.col("retweet_of").is_in(records["id"])).height
    assert v1 == planted["v1_retweeted_status"] > 100
    assert v2 == planted["v2_referenced_tweets"] > 100
    assert all_rt_text
    assert planted["rt_text"] > 100
    assert text_only == planted["rt_text"] + planted["rt_text_in_samples"]
    assert 0 < outside <= planted["original_not_in_corpus"]


def test_demo_exact_duplicates(demo, corpus):
    _, manifest = demo
    planted = manifest["planted"]["exact_duplicates"]
    plain = corpus.records.filter(~pl.col("text").str.starts_with("RT @"))["text"]
    same_text = plain.len() - plain.n_unique()
    same_after_masking_links = plain.len() - plain.str.replace_all(URL, "http").n_unique()
    assert planted["same_text"] > 100 and planted["different_link"] > 100
    assert same_text == planted["same_text"]
    assert same_after_masking_links == planted["same_text"] + planted["different_link"]


def _pairs(records: pl.DataFrame, manifest: dict, kind: str) -> tuple[list[str], list[str], list[str]]:
    """(subkind, text, source text) of each planted row of this kind, matched through the manifest's truth ids."""
    truth = pl.DataFrame(manifest["truth"]).filter(pl.col("kind") == kind)
    texts = records.select("id", "text")
    pairs = truth.join(texts, on="id").join(texts.rename({"id": "source_id", "text": "source_text"}), on="source_id")
    return pairs["subkind"].to_list(), pairs["text"].to_list(), pairs["source_text"].to_list()


def test_demo_near_duplicates_are_near_but_not_exact(demo, corpus):
    _, manifest = demo
    planted = manifest["planted"]["near_duplicates"]
    subkinds, texts, sources = _pairs(corpus.records, manifest, "near_duplicate")
    found = {kind: subkinds.count(kind) for kind in set(subkinds)}
    identical = sum(a == b for a, b in zip(texts, sources))
    masked = [[re.sub(URL, "http", t).casefold() for t in column] for column in (texts, sources)]
    similarity = [difflib.SequenceMatcher(None, a, b).ratio() for a, b in zip(*masked)]
    assert found == planted and len(subkinds) > 1000
    assert min(planted.values()) > 50  # every kind of edit is there
    assert identical == 0
    assert min(similarity) >= 0.5
    assert sum(s == 1.0 for s in similarity) == planted["case"]  # only case edits vanish when case-folded


def test_demo_toxic_lines(demo, corpus):
    _, manifest = demo
    records = corpus.records
    toxic_ids = set(records.filter(pl.col("text").str.contains_any(list(TOXIC_PHRASES)))["id"])
    planted_ids = set(pl.DataFrame(manifest["truth"]).filter(pl.col("kind") == "toxic")["id"])
    assert len(toxic_ids) == manifest["planted"]["toxic"] > 100
    assert toxic_ids == planted_ids


def _luhn(number: str) -> bool:
    digits = [int(d) for d in number][::-1]
    return sum(d if i % 2 == 0 else (2 * d - 9 if d > 4 else 2 * d) for i, d in enumerate(digits)) % 10 == 0


def _iban_valid(iban: str) -> bool:
    compact = iban.replace(" ", "")
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


PII_PATTERNS = {
    "email": re.compile(r"[\w.]+@example\.(?:com|org|net)\b"),
    "phone": re.compile(
        r"\(\d{3}\) 555-01\d\d|\+1 \d{3} 555 01\d\d|07700 900\d{3}|\+44 20 7946 0\d{3}|06 39 98 \d\d \d\d"
    ),
    "ip": re.compile(r"\b(?:192\.0\.2|198\.51\.100|203\.0\.113)\.\d{1,3}\b|\b2001:db8::[0-9]+\b"),
    "iban": re.compile(r"\b(?:DE|AT)\d{2}(?: ?\d{4}){3,4}(?: ?\d{1,2})?\b"),
    "card": re.compile(r"\b\d{4}([ -]?)\d{4}\1\d{4}\1\d{4}\b"),
}


def test_demo_pii(demo, corpus):
    _, manifest = demo
    found = dict.fromkeys(PII_PATTERNS, 0)
    for text in corpus.records["text"]:
        found["iban"] += sum(_iban_valid(m.group()) for m in PII_PATTERNS["iban"].finditer(text))
        rest = PII_PATTERNS["iban"].sub(" ", text)
        found["card"] += sum(_luhn(re.sub(r"\D", "", m.group())) for m in PII_PATTERNS["card"].finditer(rest))
        for kind in ("email", "phone", "ip"):
            found[kind] += len(PII_PATTERNS[kind].findall(text))
    assert found == manifest["planted"]["pii"]
    assert min(found.values()) > 30


def test_demo_malformed_records(demo, corpus):
    out, manifest = demo
    assert corpus.broken == {k: v for k, v in manifest["planted"]["malformed"].items() if k != "truncated_gzip"}
    assert all(v == 1 for v in corpus.broken.values())
    entry = next(f for f in manifest["files"] if f.get("truncated"))
    cut = (out / entry["path"]).read_bytes()
    with pytest.raises(EOFError):
        gzip.decompress(cut)
    complete = zlib.decompressobj(wbits=31).decompress(cut).count(b"\n")
    assert complete == entry["truncated"]["complete_lines"] > 0
    assert complete < entry["truncated"]["records_written"]


def _bundled_texts() -> list[str]:
    return [orjson.loads(line)["text"] for name in SAMPLE_FILES.values()
            for line in gzip.decompress((DEMO_DATA / name).read_bytes()).splitlines()]


def test_bundled_samples_hold_no_handles_or_contact_details():
    texts = _bundled_texts()
    n_texts = len(texts)
    handles = sum(bool(re.search(r"[@＠](?!user(?!\w))\w", t)) for t in texts)
    contacts = sum(bool(re.search(r"\S+@\S+\.\w{2,}|\d{7,}", t)) for t in texts)
    masked = sum("@user" in t for t in texts)
    assert n_texts > 20_000
    assert handles == 0 and contacts == 0
    assert masked > 1000  # the handles were masked, not the tweets dropped
    size = sum((DEMO_DATA / name).stat().st_size for name in SAMPLE_FILES.values())
    assert size < 1_500_000
    assert (DEMO_DATA / "NOTICE.md").is_file()
    assert (DEMO_DATA / "LICENSE-xlm-t.txt").is_file() and (DEMO_DATA / "LICENSE-crisislex.txt").is_file()


@pytest.mark.slow
def test_bundle_rebuilds_byte_for_byte(shared_data, tmp_path):
    subprocess.run([sys.executable, str(REPO / "bench" / "make_demo_data.py"), "--shared", str(shared_data),
                    "--out", str(tmp_path)], check=True, capture_output=True)
    for name in SAMPLE_FILES.values():
        assert (tmp_path / name).read_bytes() == (DEMO_DATA / name).read_bytes(), name


def test_bench_v2_jsonl_size_and_rates(tmp_path):
    n = 20_000
    stats = write_v2_jsonl(tmp_path / "a.jsonl", n, seed=3, dup_rate=0.1, near_dup_rate=0.08)
    lines = (tmp_path / "a.jsonl").read_bytes().splitlines()
    tweets = pl.DataFrame([orjson.loads(line) for line in lines])
    assert tweets.height == stats["n"] == n
    assert 300 <= stats["bytes"] / n <= 420
    assert tweets["id"].n_unique() == n and tweets["lang"].n_unique() == 8
    assert n - tweets["text"].n_unique() == stats["exact_duplicates"] == round(0.1 * n)
    retweets = tweets.filter(pl.col("referenced_tweets").is_not_null())
    assert retweets.height == stats["retweets"] == round(0.05 * n)
    assert retweets["referenced_tweets"].list.first().struct.field("id").is_in(tweets["id"]).all()
    assert retweets["text"].str.starts_with("RT @").all()



def test_bench_v2_jsonl_is_deterministic(tmp_path):
    written = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        write_v2_jsonl(tmp_path / name, 3000, seed=seed)
        written[name] = (tmp_path / name).read_bytes()
    assert written["a"] == written["b"]
    assert written["a"] != written["c"]


def test_bench_near_duplicates_are_one_edit_from_their_source():
    frame = v2_frame(20_000, seed=5, dup_rate=0.05, near_dup_rate=0.1)
    near = frame.filter(pl.col("role") == "near")
    assert near.height == 2000 and near["near_kind"].n_unique() == 7
    source = frame["text"].gather(near["source"])
    assert (near["text"] != source).all()
    assert not near["text"].is_in(frame.filter(pl.col("role") != "near")["text"]).any()
    similarity = [difflib.SequenceMatcher(None, a.lower(), b.lower()).ratio() for a, b in zip(near["text"], source)]
    assert min(similarity) >= 0.5
    assert (frame["ms"].gather(near["source"]) < near["ms"]).all()  # the copy comes after its source


def test_text_corpus_is_canonical():
    table = write_text_corpus(5000, seed=1, dup_rate=0.2)
    assert table.schema == TWEET_SCHEMA
    assert table.num_rows == 5000
    texts = pl.from_arrow(table.column("text"))
    assert 5000 - texts.n_unique() == 1000
    assert table.column("created_at").null_count == 0


@pytest.mark.slow
def test_demo_beyond_the_bundle_fills_up_with_word_salad(tmp_path):
    manifest = write_demo_corpus(tmp_path, n_tweets=40_000, seed=1)
    records, _ = read_corpus(tmp_path, manifest)
    n_records, n_ids = records.height, records["id"].n_unique()
    plain = records.filter(~pl.col("text").str.starts_with("RT @"))["text"]
    same_text = plain.len() - plain.n_unique()
    assert n_records == n_ids == 40_000
    assert manifest["planted"]["synthetic_filler"] > 5_000  # the bundle holds ~25k tweets
    assert same_text == manifest["planted"]["exact_duplicates"]["same_text"]
