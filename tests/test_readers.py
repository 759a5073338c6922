"""Readers against synthetic fixtures (tests/fixtures/readers): expected values are computed from the raw JSON here,
independently of the readers' own field mapping."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
from datetime import datetime, timezone
from itertools import product

import fsspec
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import zstandard

from transforms.readers import InputError, ReaderOptions, expand_inputs, fingerprint, read_inputs
from transforms.readers.prefetch import prefetch
from transforms.readers.timestamps import V1_FORMAT, parse_timestamps
from transforms.schema import EXCERPT_CHARS, REJECT_SCHEMA, TWEET_SCHEMA


@pytest.fixture(scope="module")
def data(fixtures):
    return fixtures / "readers"


def read(paths, **options) -> tuple[pa.Table, pa.Table]:
    """All batches of one read, concatenated; checks the schemas of every batch on the way."""
    if not isinstance(paths, list):
        paths = [paths]
    tweets, rejects = [], []
    for batch in read_inputs([str(p) for p in paths], ReaderOptions(**options)):
        assert batch.tweets.schema.equals(TWEET_SCHEMA, check_metadata=False)
        assert batch.rejects.schema.equals(REJECT_SCHEMA, check_metadata=False)
        tweets.append(batch.tweets)
        rejects.append(batch.rejects)
    return (
        pa.concat_tables(tweets) if tweets else TWEET_SCHEMA.empty_table(),
        pa.concat_tables(rejects) if rejects else REJECT_SCHEMA.empty_table(),
    )


def raw_lines(path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)


def test_v1_fields_come_from_the_raw_objects(data):
    tweets, rejects = read(data / "v1_tweets.jsonl")
    raws = raw_lines(data / "v1_tweets.jsonl")
    assert rejects.num_rows == 0 and tweets.num_rows == len(raws)
    for line, (row, raw) in enumerate(zip(tweets.to_pylist(), raws), start=1):
        quoted = raw.get("quoted_status_id_str") or (raw.get("quoted_status") or {}).get("id_str")
        expected = {
            "id": raw.get("id_str") or str(raw["id"]),
            "text": (raw.get("extended_tweet") or {}).get("full_text") or raw.get("full_text") or raw["text"],
            "created_at": datetime.strptime(raw["created_at"], V1_FORMAT).astimezone(timezone.utc),
            "author_id": raw["user"]["id_str"],
            "lang_hint": raw["lang"],
            "in_reply_to_id": raw.get("in_reply_to_status_id_str"),
            "retweet_of_id": (raw.get("retweeted_status") or {}).get("id_str"),
            "quote_of_id": quoted,
            "retweet_count": raw["retweet_count"],
            "like_count": raw["favorite_count"],
            "reply_count": raw.get("reply_count"),
            "quote_count": raw.get("quote_count"),
            "source_format": "v1.1",
            "source_line": line,
            "source_index": 0,
        }
        assert {k: row[k] for k in expected} == expected
    assert "id_str" not in raws[-1] and tweets.column("id")[-1].as_py() == str(raws[-1]["id"])
    assert raws[1]["truncated"] and tweets.column("text")[1].as_py() == raws[1]["extended_tweet"]["full_text"]


def test_v1_search_response_is_taken_apart(data):
    tweets, rejects = read(data / "v1_search.json")
    statuses = orjson.loads((data / "v1_search.json").read_bytes())["statuses"]
    assert rejects.num_rows == 0
    assert tweets.column("id").to_pylist() == [s["id_str"] for s in statuses]
    assert tweets.column("source_index").to_pylist() == list(range(len(statuses)))


def _v2_expected(raw: dict) -> dict:
    refs = {r["type"]: r["id"] for r in reversed(raw.get("referenced_tweets", []))}
    return {
        "id": raw["id"],
        "text": (raw.get("note_tweet") or {}).get("text") or raw["text"],
        "created_at": iso(raw["created_at"]),
        "author_id": raw["author_id"],
        "conversation_id": raw["conversation_id"],
        "lang_hint": raw["lang"],
        "in_reply_to_id": refs.get("replied_to"),
        "retweet_of_id": refs.get("retweeted"),
        "quote_of_id": refs.get("quoted"),
        **{m: raw["public_metrics"][m] for m in ("retweet_count", "reply_count", "like_count", "quote_count")},
    }


def test_v2_pages_give_only_their_data_tweets(data):
    tweets, rejects = read(data / "v2_pages.jsonl")
    pages = raw_lines(data / "v2_pages.jsonl")
    expected = [(line, index, _v2_expected(t)) for line, p in enumerate(pages, 1) for index, t in enumerate(p["data"])]
    assert rejects.num_rows == 0 and tweets.num_rows == len(expected)
    for row, (line, index, fields) in zip(tweets.to_pylist(), expected):
        assert {k: row[k] for k in fields} == fields
        assert (row["source_line"], row["source_index"], row["source_format"]) == (line, index, "v2")
    context = {t["id"] for p in pages for t in p["includes"].get("tweets", [])}
    assert context and not context & set(tweets.column("id").to_pylist())
    assert any("note_tweet" in t for p in pages for t in p["data"])


def test_v2_flat_lines_keep_line_numbers_and_reject_a_dm(data):
    tweets, rejects = read(data / "v2_flat.jsonl")
    lines = (data / "v2_flat.jsonl").read_bytes().split(b"\n")
    tweet_lines = [n for n, line in enumerate(lines, 1) if line.strip() and b"event_type" not in line]
    assert tweets.column("source_line").to_pylist() == tweet_lines
    assert [tweets.to_pylist()[i][k] for i in range(2) for k in ("id",)] == [
        orjson.loads(lines[n - 1])["id"] for n in tweet_lines[:2]
    ]
    dm_line = next(n for n, line in enumerate(lines, 1) if b"event_type" in line)
    assert rejects.column("source_line").to_pylist() == [dm_line]
    assert "direct-message" in rejects.column("reason")[0].as_py()


def test_account_archive_parts(data):
    tweets, rejects = read(data / "archive" / "tweets.js")
    content = (data / "archive" / "tweets.js").read_bytes()
    elements = orjson.loads(content[content.index(b"=") + 1 :])
    assert rejects.num_rows == 0 and tweets.num_rows == len(elements)
    for row, element in zip(tweets.to_pylist(), elements):
        raw = element["tweet"]
        assert row["id"] == raw["id_str"] and row["text"] == raw["full_text"]
        assert row["like_count"] == int(raw["favorite_count"]) and row["retweet_count"] == int(raw["retweet_count"])
        assert row["in_reply_to_id"] == raw.get("in_reply_to_status_id_str") and row["source_format"] == "archive"
    assert list(read_inputs([str(data / "archive" / "note-tweet.js")])) == []  # an empty part: nothing at all
    assert read(data / "archive" / "deleted-tweets.js")[0].num_rows == 1
    like_tweets, like_rejects = read(data / "archive" / "like.js")
    assert like_tweets.num_rows == 0 and like_rejects.num_rows == 1
    assert like_rejects.column("reason")[0].as_py().startswith("document holds no tweets")


def test_archive_note_tweets_are_read(tmp_path):
    note = {"noteTweetId": "1950000000000000001", "createdAt": "2025-02-01T10:00:00.000Z",
            "core": {"text": "a long note " * 40, "urls": []}}
    path = tmp_path / "note-tweet.js"
    path.write_bytes(b"window.YTD.note_tweet.part0 = " + orjson.dumps([{"noteTweet": note}]))
    tweets, rejects = read(path)
    assert rejects.num_rows == 0
    assert tweets.select(["id", "text", "created_at"]).to_pylist() == [
        {"id": note["noteTweetId"], "text": note["core"]["text"], "created_at": iso(note["createdAt"])}
    ]


def test_activity_streams(data):
    tweets, rejects = read(data / "activity.jsonl")
    raws = raw_lines(data / "activity.jsonl")
    assert rejects.num_rows == 0 and tweets.num_rows == len(raws)
    for row, raw in zip(tweets.to_pylist(), raws):
        assert row["id"] == raw["id"].rsplit(":", 1)[1]
        assert row["text"] == (raw.get("long_object") or {}).get("body", raw["body"])
        assert row["author_id"] == raw["actor"]["id"].rsplit(":", 1)[1]
        assert row["created_at"] == iso(raw["postedTime"])
        shared = raw["object"]["id"].rsplit(":", 1)[1] if raw["verb"] == "share" else None
        assert row["retweet_of_id"] == shared
        assert row["in_reply_to_id"] == (raw["inReplyTo"]["link"].rsplit("/", 1)[1] if "inReplyTo" in raw else None)
        quoted = raw.get("twitter_quoted_status")
        assert row["quote_of_id"] == (quoted["id"].rsplit(":", 1)[1] if quoted else None)
        assert (row["retweet_count"], row["like_count"]) == (raw["retweetCount"], raw["favoritesCount"])
    assert sum(r["verb"] == "share" for r in raws) == 1 and any("long_object" in r for r in raws)


def test_csv_ids_quotes_multiline_and_bad_rows(data):
    tweets, rejects = read(data / "tweets.csv")
    assert tweets.select(["id", "source_line"]).to_pylist() == [
        {"id": "1300000000000000001", "source_line": 2},
        {"id": "1300000000000000002", "source_line": 3},
        {"id": "1300000000000000006", "source_line": 8},
    ]
    assert tweets.column("text")[1].as_py() == 'a tweet "with quotes"\nand a second line'
    assert set(tweets.column("source_format").to_pylist()) == {"csv"}
    assert rejects.select(["source_line", "reason"]).to_pylist() == [
        {"source_line": 5, "reason": "row has 4 fields, expected 3"},
        {"source_line": 6, "reason": "record has no text"},
        {"source_line": 7, "reason": "record id is not a decimal number"},
    ]


def test_csv_bad_bytes_and_stray_quotes_fall_back_row_by_row(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_bytes(
        b"id,text\n"
        b"1,fine\n"
        b"2,bad \xff byte\n"
        b'3,a stray " quote inside\n'
        b'4,"quoted, with comma"\n'
    )
    tweets, rejects = read(path)
    assert tweets.select(["id", "text", "source_line"]).to_pylist() == [
        {"id": "1", "text": "fine", "source_line": 2},
        {"id": "3", "text": 'a stray " quote inside', "source_line": 4},
        {"id": "4", "text": "quoted, with comma", "source_line": 5},
    ]
    assert rejects.select(["source_line", "reason"]).to_pylist() == [
        {"source_line": 3, "reason": "invalid UTF-8 (byte 0xff at column 7)"}
    ]


def test_tsv_by_extension(data):
    tweets, rejects = read(data / "tweets.tsv")
    assert rejects.num_rows == 0 and tweets.column("source_format").to_pylist() == ["tsv", "tsv"]
    assert tweets.column("text")[1].as_py() == '"quotes" are literal here'
    assert tweets.column("created_at").to_pylist() == [
        datetime(2020, 2, 2, 10, tzinfo=timezone.utc), datetime(2020, 2, 3, 10, tzinfo=timezone.utc)
    ]


def test_csv_column_map_and_forced_format(tmp_path):
    path = tmp_path / "export.txt"
    path.write_text("post,body_text,when,user\n11,hello there,2022-05-06T07:08:09Z,5\n12,second,bad date,6\n")
    columns = {"id": "post", "text": "body_text", "created_at": "when", "author_id": "user"}
    tweets, rejects = read(path, format="csv", csv_columns=columns)
    assert rejects.num_rows == 0
    assert tweets.select(["id", "text", "created_at", "author_id"]).to_pylist() == [
        {"id": "11", "text": "hello there", "created_at": datetime(2022, 5, 6, 7, 8, 9, tzinfo=timezone.utc),
         "author_id": "5"},
        {"id": "12", "text": "second", "created_at": None, "author_id": "6"},
    ]


def test_parquet_with_native_types(tmp_path):
    path = tmp_path / "tweets.parquet"
    pq.write_table(pa.table({
        "tweet_id": pa.array([1_000_000_000_000_000_001, 1_000_000_000_000_000_002, None], pa.int64()),
        "full_text": ["first", "second", "third"],
        "timestamp": pa.array([datetime(2020, 1, 1, tzinfo=timezone.utc)] * 3, pa.timestamp("ms", tz="UTC")),
        "favorite_count": pa.array([3, None, 1], pa.int32()),
    }), path)
    tweets, rejects = read(path)
    assert tweets.select(["id", "text", "like_count", "source_line"]).to_pylist() == [
        {"id": "1000000000000000001", "text": "first", "like_count": 3, "source_line": 1},
        {"id": "1000000000000000002", "text": "second", "like_count": None, "source_line": 2},
    ]
    assert tweets.column("created_at")[0].as_py() == datetime(2020, 1, 1, tzinfo=timezone.utc)
    assert rejects.select(["source_line", "reason"]).to_pylist() == [{"source_line": 3, "reason": "record has no id"}]


def test_flat_canonical_jsonl(data):
    tweets, rejects = read(data / "flat.jsonl")
    raws = raw_lines(data / "flat.jsonl")
    assert rejects.num_rows == 0
    assert tweets.column("id").to_pylist() == [str(r["tweet_id"]) for r in raws]
    assert tweets.column("retweet_of_id").to_pylist() == [r["retweet_of_id"] for r in raws]
    assert tweets.column("like_count").to_pylist() == [r["like_count"] for r in raws]
    assert set(tweets.column("source_format").to_pylist()) == {"jsonl"}


def test_non_tweet_documents_are_one_reject_each(data):
    for name, words in [
        ("users_response.json", "users response"),
        ("dm_events.json", "direct-message events"),
        ("counts_response.json", "empty v2 response"),
        ("empty_array.json", "empty array"),
    ]:
        tweets, rejects = read(data / name)
        assert tweets.num_rows == 0 and rejects.num_rows == 1, name
        reason = rejects.column("reason")[0].as_py()
        assert reason.startswith("document holds no tweets") and words in reason, name
    assert list(read_inputs([str(data / "empty.jsonl")])) == []


def test_http_envelope_is_unwrapped(data):
    tweets, rejects = read(data / "envelope.json")
    body = orjson.loads((data / "envelope.json").read_bytes())["body"]
    assert rejects.num_rows == 0 and tweets.column("id").to_pylist() == [t["id"] for t in body["data"]]


COMPRESSORS = {
    "gz": gzip.compress,
    "bz2": bz2.compress,
    "zst": lambda b: zstandard.ZstdCompressor().compress(b),
    "xz": lzma.compress,
}


@pytest.mark.parametrize("suffix", sorted(COMPRESSORS))
def test_compressed_inputs_read_the_same(data, tmp_path, suffix):
    plain = data / "v2_flat.jsonl"
    packed = tmp_path / f"v2_flat.jsonl.{suffix}"
    packed.write_bytes(COMPRESSORS[suffix](plain.read_bytes()))
    want, want_rejects = read(plain)
    got, got_rejects = read(packed)
    assert got.drop_columns(["source_file"]).equals(want.drop_columns(["source_file"]))
    assert got_rejects.drop_columns(["source_file"]).equals(want_rejects.drop_columns(["source_file"]))


def _v2_lines(n: int, start: int = 0) -> list[bytes]:
    return [orjson.dumps({"id": str(10_000 + i), "text": f"tweet {i}", "created_at": "2024-01-01T00:00:00.000Z"})
            for i in range(start, start + n)]


@pytest.mark.parametrize("suffix", ["gz", "zst"])
def test_truncated_stream_keeps_the_records_before_the_break(tmp_path, suffix):
    lines = _v2_lines(40_000)  # zstd decodes whole 128 KiB blocks: enough of them to cut one in the middle
    packed = COMPRESSORS[suffix](b"\n".join(lines) + b"\n")
    path = tmp_path / f"cut.jsonl.{suffix}"
    path.write_bytes(packed[: len(packed) // 2])
    tweets, rejects = read(path, batch_bytes=256 << 10)
    kept = tweets.num_rows
    assert 0 < kept < len(lines)
    assert tweets.column("id").to_pylist() == [str(10_000 + i) for i in range(kept)]
    assert rejects.num_rows == 1
    assert rejects.column("reason")[0].as_py().startswith(f"truncated {suffix} stream")
    assert rejects.column("source_line")[0].as_py() == kept + 1


def test_each_bad_line_becomes_one_reject(tmp_path):
    good = _v2_lines(3)
    bad = [
        (b'{"id": "20001", "text": "unterminated', "malformed JSON"),
        (b'{"id": "20002", "text": "bad \xff byte"}', "invalid UTF-8"),
        (b'{"text": "no id at all"}', "record has no id"),
        (b'{"id": "20004", "created_at": "2024-01-01T00:00:00Z"}', "record has no text"),
        (b'{"id": "12ab", "text": "letters in the id"}', "record id is not a decimal number"),
        (b"[1, 2", "malformed JSON"),
    ]
    body = [good[0], b"", *[line for line, _ in bad[:3]], b"   ", good[1], *[line for line, _ in bad[3:]], good[2]]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(body) + b"\n")
    tweets, rejects = read(path)
    numbers = {line: n for n, line in enumerate(body, 1)}
    assert tweets.column("source_line").to_pylist() == [numbers[g] for g in good]
    got = rejects.select(["source_line", "reason"]).to_pylist()
    assert [r["source_line"] for r in got] == [numbers[line] for line, _ in bad]
    for row, (_, reason) in zip(got, bad):
        assert row["reason"].startswith(reason), row


def test_bare_nan_is_taken_on_both_paths(tmp_path):
    """pyarrow's reader accepts NaN/Infinity literals, so the slow path does too: no chunk-dependent fate."""
    line = b'{"id": "20007", "text": "t", "score": NaN, "retweet_count": 1}'
    conflict = b'{"id": 20008, "text": "a number id sends its neighbours to the slow path"}'
    path = tmp_path / "nan.jsonl"
    path.write_bytes(b"\n".join(_v2_lines(30) + [line, conflict] + _v2_lines(30, 30)) + b"\n")
    for batch_bytes in (32 << 20, 64):
        tweets, rejects = read(path, batch_bytes=batch_bytes)
        assert rejects.num_rows == 0 and {"20007", "20008"} <= set(tweets.column("id").to_pylist())


def test_type_conflicts_fall_back_without_losing_the_record(tmp_path):
    raws = [{"id": 30_000 + i, "id_str": str(30_000 + i), "text": f"t{i}", "retweet_count": i,
             "created_at": "Wed Oct 10 20:19:24 +0000 2018", "user": {"id": 5, "id_str": "5"}} for i in range(40)]
    raws[17]["retweet_count"] = "17"  # a string where the rest have numbers
    raws[23]["id_str"] = 30_023  # a number where the rest have strings
    path = tmp_path / "conflicts.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in raws))
    tweets, rejects = read(path)
    assert rejects.num_rows == 0
    assert tweets.column("id").to_pylist() == [str(r["id"]) for r in raws]
    assert tweets.column("retweet_count").to_pylist() == list(range(40))


def test_fast_and_slow_paths_agree(data, tmp_path):
    """The same tweets as JSON lines (pyarrow) and as one JSON array (orjson + coercion) map identically."""
    lineage = ["source_file", "source_line", "source_index"]
    for name in ("v1_tweets.jsonl", "v2_flat.jsonl", "activity.jsonl", "flat.jsonl"):
        raws = [r for r in raw_lines(data / name) if "event_type" not in r]
        array = tmp_path / f"{name}.json"
        array.write_bytes(orjson.dumps(raws))
        fast, _ = read(data / name)
        slow, slow_rejects = read(array)
        assert slow_rejects.num_rows == 0
        assert fast.drop_columns(lineage).equals(slow.drop_columns(lineage)), name


def test_results_do_not_depend_on_batch_size(data, tmp_path):
    parts = [(data / n).read_bytes() for n in ("v2_pages.jsonl", "v2_flat.jsonl")]
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_bytes(parts[1] + b'{"broken\n' + parts[0] + b"\n".join(_v2_lines(50)) + b'\n{"id": 5, "text": "x"}\n')
    whole = read(mixed)
    batches = list(read_inputs([str(mixed)], ReaderOptions(batch_bytes=700)))
    assert len(batches) > 3
    small = (pa.concat_tables([b.tweets for b in batches]), pa.concat_tables([b.rejects for b in batches]))
    assert whole[0].num_rows == 5 + 4 + 50 + 1 and whole[1].num_rows == 2
    assert small[0].equals(whole[0]) and small[1].equals(whole[1])


def test_a_file_of_dumps_put_together_reads_each_tweet_by_its_own_kind(tmp_path):
    """The first tweet sets the file's kind (v2 here); a later tweet whose markers name only another kind is read as
    that kind, on the fast path and the slow one alike, whatever the batch size."""
    v1_lines = [  # v1.1 extended mode; a truncated `text` beside the full one; a string id the v2 reader would take
        {"id_str": "100021", "full_text": "a v1.1 extended-mode tweet with its full text",
         "user": {"id_str": "555", "screen_name": "someone"}},
        {"id_str": "100022", "text": "truncated v1.1 text…", "user": {"id_str": "556"},
         "extended_tweet": {"full_text": "the complete v1.1 text of the tweet, longer than 140"}},
        {"id": 100023, "id_str": "100023", "text": "truncated…", "extended_tweet": {"full_text": "full 100023"},
         "user": {"id": 557, "id_str": "557"}},
        {"id": "100024", "id_str": "100024", "text": "truncated…", "extended_tweet": {"full_text": "full 100024"},
         "user": {"id_str": "558"}},
    ]
    escaped = b'{"id": "100025", "text": "a key spelled with an escape", "us\\u0065r": {"id": 559}}'
    first = orjson.dumps({"id": "100001", "text": "a v2 tweet that sets the file kind", "author_id": "42"})
    body = [first, *_v2_lines(30), *map(orjson.dumps, v1_lines), escaped, *_v2_lines(30, 30)]
    path = tmp_path / "concatenated.jsonl"
    path.write_bytes(b"\n".join(body) + b"\n")
    want = {"100021": ("a v1.1 extended-mode tweet with its full text", "555"),
            "100022": ("the complete v1.1 text of the tweet, longer than 140", "556"),
            "100023": ("full 100023", "557"), "100024": ("full 100024", "558"),
            "100025": ("a key spelled with an escape", "559")}
    for batch_bytes in (32 << 20, 64):
        tweets, rejects = read(path, batch_bytes=batch_bytes)
        assert rejects.num_rows == 0 and tweets.num_rows == len(body)
        got = {r["id"]: r for r in tweets.to_pylist() if r["id"] in want}
        assert {i: (r["text"], r["author_id"]) for i, r in got.items()} == want
        assert {r["source_format"] for r in got.values()} == {"v1.1"}
        assert tweets.column("author_id")[0].as_py() == "42"
        assert set(tweets.column("source_format").to_pylist()[1:31]) == {"v2"}


def test_a_tweet_keeps_the_files_kind_when_its_markers_also_name_it(tmp_path):
    """Flat exports borrow v1.1 names (favorite_count): with a flat marker beside it a record stays flat; a v1.1
    tweet in the same file is read as v1.1."""
    path = tmp_path / "flat.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in [
        {"tweet_id": "1", "text": "flat", "user_id": "5"},
        {"tweet_id": "2", "text": "flat with a v1.1 name", "user_id": "6", "favorite_count": 3},
        {"id_str": "3", "full_text": "a v1.1 tweet", "user": {"id_str": "7"}},
    ]) + b"\n")
    tweets, rejects = read(path)
    assert rejects.num_rows == 0
    assert tweets.select(["id", "text", "author_id", "like_count", "source_format"]).to_pylist() == [
        {"id": "1", "text": "flat", "author_id": "5", "like_count": None, "source_format": "jsonl"},
        {"id": "2", "text": "flat with a v1.1 name", "author_id": "6", "like_count": 3, "source_format": "jsonl"},
        {"id": "3", "text": "a v1.1 tweet", "author_id": "7", "like_count": None, "source_format": "v1.1"},
    ]


def test_ids_have_one_spelling_on_every_path(tmp_path):
    """Zero-padded ids come out as the stages see them (uint64): without leading zeros, "0" for zeros."""
    want = {"id": "100008", "author_id": "42", "conversation_id": "100008", "in_reply_to_id": "7",
            "retweet_of_id": "0", "quote_of_id": "900"}
    v2 = {"id": "0000100008", "text": "v2", "author_id": "00042", "conversation_id": "0000100008",
          "referenced_tweets": [{"type": "replied_to", "id": "007"}, {"type": "retweeted", "id": "000"},
                                {"type": "quoted", "id": "0900"}]}
    v1 = {"id_str": "0000100008", "full_text": "v1.1", "user": {"id_str": "00042"}, "conversation_id_str": "0100008",
          "in_reply_to_status_id_str": "07", "retweeted_status": {"id_str": "0"}, "quoted_status_id_str": "00900"}
    tag = "tag:search.twitter.com,2005:"
    activity = {"id": f"{tag}0000100008", "verb": "share", "body": "activity", "actor": {"id": "id:twitter.com:042"},
                "object": {"id": f"{tag}00"}, "inReplyTo": {"link": "http://twitter.com/u/statuses/0007"},
                "twitter_quoted_status": {"id": f"{tag}0900"}}
    flat = {"tweet_id": "'0000100008'", "text": "flat", "user_id": " 042", "in_reply_to_id": "07",
            "retweet_of_id": "0000", "quote_of_id": "0900"}
    records = {"v2": (v2, want), "v1": (v1, want), "activity": (activity, want | {"conversation_id": None}),
               "flat": (flat, want | {"conversation_id": None})}
    files = {}
    for name, (record, expected) in records.items():
        files[f"{name}.jsonl"] = (orjson.dumps(record) + b"\n", expected)
        files[f"{name}.json"] = (orjson.dumps([record]), expected)  # a document: the slow path
    files["flat.csv"] = (",".join(flat).encode() + b"\n" + ",".join(flat.values()).encode() + b"\n", records["flat"][1])
    for name, (content, _) in files.items():
        (tmp_path / name).write_bytes(content)
    pq.write_table(pa.table({k: [v] for k, v in flat.items()}), tmp_path / "flat.parquet")
    files["flat.parquet"] = (None, records["flat"][1])
    for name, (_, expected) in files.items():
        tweets, rejects = read(tmp_path / name)
        assert rejects.num_rows == 0, name
        assert tweets.select(list(expected)).to_pylist() == [expected], name


def test_id_validation_judges_the_digits_whatever_the_zeros(tmp_path):
    accepted = {"0": "0", "000": "0", "0000100008": "100008", "00018446744073709551615": "18446744073709551615"}
    rejected = {
        "00018446744073709551616": "record id is above the 64-bit range (18446744073709551615)",
        "01.23457E+18": "record id is not a decimal number",
        "0.5e3": "record id is in scientific notation (a spreadsheet rounded it: export ids as text)",
        " 0123": "record id is not a decimal number",
        "00abc": "record id is not a decimal number",
        "-0012": "record id is not a decimal number",
        "": "record id is not a decimal number",
    }
    ids = [*accepted, *rejected]
    path = tmp_path / "ids.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"id": i, "text": "t"}) + b"\n" for i in ids))
    tweets, rejects = read(path)
    assert tweets.column("id").to_pylist() == list(accepted.values())
    assert [(ids[r["source_line"] - 1], r["reason"]) for r in rejects.to_pylist()] == list(rejected.items())


def test_missing_inputs_raise_input_error(tmp_path):
    with pytest.raises(InputError, match="nope.jsonl"):
        read_inputs([str(tmp_path / "nope.jsonl")])
    with pytest.raises(InputError, match=r"\*.zzz"):
        expand_inputs([str(tmp_path / "*.zzz")])
    with pytest.raises(InputError, match="no-such-format"):
        ReaderOptions(format="no-such-format")
    with pytest.raises(InputError, match="txt"):
        ReaderOptions(csv_columns={"txt": "tweet"})
    with pytest.raises(InputError, match="memory://nowhere"):
        expand_inputs(["memory://nowhere/x.jsonl"])
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("not a data file")
    with pytest.raises(InputError, match="no data files in the folder .*empty"):
        expand_inputs([str(tmp_path / "empty")])


def test_expand_inputs_walks_globs_and_uris(tmp_path):
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for name in ("a.jsonl", "b/z.json.gz", "b/deep/c.csv", "b/README.txt", "b/_SUCCESS", ".hidden/x.jsonl"):
        (tmp_path / name).write_bytes(b"")
    found = expand_inputs([str(tmp_path)])
    assert found == [str(tmp_path / n) for n in ("a.jsonl", "b/deep/c.csv", "b/z.json.gz")]
    assert expand_inputs([f"file://{tmp_path}/b"]) == [str(tmp_path / n) for n in ("b/deep/c.csv", "b/z.json.gz")]
    assert expand_inputs([str(tmp_path / "b" / "**" / "*.csv"), str(tmp_path / "a.jsonl"), str(tmp_path / "a.jsonl")]) \
        == [str(tmp_path / "b/deep/c.csv"), str(tmp_path / "a.jsonl")]
    fs = fsspec.filesystem("memory")
    fs.pipe("/readers-test/in/one.jsonl", b"\n".join(_v2_lines(2)))
    fs.pipe("/readers-test/in/two.jsonl", b"\n".join(_v2_lines(3, 2)))
    uris = expand_inputs(["memory://readers-test/in"])
    assert uris == ["memory://readers-test/in/one.jsonl", "memory://readers-test/in/two.jsonl"]
    tweets, _ = read(uris)
    assert tweets.num_rows == 5 and tweets.column("source_file")[0].as_py() == uris[0]
    assert fingerprint(uris[0]) == fingerprint(uris[0])


def test_fingerprint_is_stable_and_follows_content(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"x" * 300_000)
    first = fingerprint(str(path))
    assert fingerprint(str(path)) == first
    path.write_bytes(b"x" * 299_999 + b"y")
    os.utime(path, ns=(0, 0))
    assert fingerprint(str(path)) != first


def test_excerpts_are_bounded(tmp_path):
    path = tmp_path / "long.jsonl"
    path.write_bytes(b'{"id": "1", "text": "' + b"z" * 50_000 + b"\n")
    _, rejects = read(path)
    assert rejects.num_rows == 1 and 0 < len(rejects.column("excerpt")[0].as_py()) <= EXCERPT_CHARS


def test_timestamp_fallbacks_agree_with_the_iso_cast():
    """A bad value in an array sends all of it down the strptime fallbacks; every form the fast ISO cast reads
    must come out the same there, or a timestamp would depend on its neighbours."""
    times = ["", "T00", "T00:00", " 00:00:00", "T00:00:00", "T00:00:00.5", "T12:34:56.123456"]
    forms = [f"2021-03-01{t}{z}" for t, z in product(times, ["", "Z", "+01:00", "-0130", "+01"])]
    checked = 0
    for form in forms:
        try:
            cast = pc.cast(pa.array([form]), TWEET_SCHEMA.field("created_at").type)[0].as_py()
        except pa.ArrowInvalid:
            continue
        checked += 1
        assert parse_timestamps(pa.array([form, "not a date"]))[0].as_py() == cast, form
    assert checked >= 20
    v1 = parse_timestamps(pa.array(["Wed Oct 10 20:19:24 +0200 2018", None]), V1_FORMAT)
    assert v1.to_pylist() == [datetime(2018, 10, 10, 18, 19, 24, tzinfo=timezone.utc), None]


def test_a_truncated_document_is_one_reject(data, tmp_path):
    packed = gzip.compress((data / "v1_search.json").read_bytes())
    path = tmp_path / "search.json.gz"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    tweets, rejects = read(path)
    assert tweets.num_rows == 0 and rejects.num_rows == 1
    assert rejects.column("reason")[0].as_py().startswith("truncated gz stream")


def test_prefetch_keeps_order_raises_and_stops_early():
    assert list(prefetch(iter(range(100)))) == list(range(100))

    def failing():
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(prefetch(failing()))
    produced = []

    def endless():
        for i in range(10**9):
            produced.append(i)
            yield i

    stream = prefetch(endless(), depth=1)
    assert next(stream) == 0
    stream.close()  # the worker notices and ends: no runaway producer
    assert len(produced) <= 4


def test_broken_json_document_and_broken_first_line(tmp_path):
    pretty = tmp_path / "pretty.json"
    pretty.write_text('{\n  "statuses": [\n    {"id_str": "1", "text": "a"\n  ]\n}\n')
    tweets, rejects = read(pretty)
    assert tweets.num_rows == 0 and rejects.num_rows == 1
    assert rejects.column("reason")[0].as_py().startswith("malformed JSON document")
    lines = tmp_path / "lines.json"
    lines.write_bytes(b'{"id": "1", "text": "broken}\n' + b"\n".join(_v2_lines(3)) + b"\n")
    tweets, rejects = read(lines)
    assert tweets.num_rows == 3 and rejects.column("source_line").to_pylist() == [1]


def test_damaged_parquet_is_one_reject(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1" + b"\x00" * 100 + b"PAR1")
    tweets, rejects = read(path)
    assert tweets.num_rows == 0 and rejects.num_rows == 1
    assert rejects.column("reason")[0].as_py().startswith("unreadable Parquet data")


def test_parquet_values_no_mapper_expects_cost_only_their_own_rows(tmp_path):
    """pandas' nanosecond timestamps are truncated, a count beyond int64 (or infinite) is null, and a text that is
    not UTF-8 rejects its row alone: the rest of the batch and of the file is read."""
    path = tmp_path / "odd.parquet"
    pq.write_table(pa.table({
        "id": ["1", "2", "3", "4"],
        "text": pa.array([b"first", b"second \xff\xfe", b"third", b"fourth"], pa.binary()),
        "created_at": pa.array([1_600_000_000_123_456_789] * 4, pa.timestamp("ns")),
        "like_count": [1.0, 2.0, 1e30, float("inf")],
    }), path)
    tweets, rejects = read(path)
    assert tweets.select(["id", "text", "like_count"]).to_pylist() == [
        {"id": "1", "text": "first", "like_count": 1},
        {"id": "3", "text": "third", "like_count": None},
        {"id": "4", "text": "fourth", "like_count": None},
    ]
    assert tweets.column("created_at")[0].as_py() == datetime(2020, 9, 13, 12, 26, 40, 123456, tzinfo=timezone.utc)
    assert rejects.select(["source_line", "reason"]).to_pylist() == [
        {"source_line": 2, "reason": "column 'text' is not valid UTF-8"}]


def test_a_count_out_of_range_is_null_not_a_crash(tmp_path):
    path = tmp_path / "flat.jsonl"
    path.write_bytes(b'{"tweet_id": "1", "text": "a", "like_count": 1e30}\n'
                     b'{"tweet_id": "2", "text": "b", "like_count": 7}\n'
                     b'[{"tweet_id": "3", "text": "c", "like_count": 1e300}]\n')
    tweets, rejects = read(path)
    assert rejects.num_rows == 0
    assert tweets.select(["id", "like_count"]).to_pylist() == [
        {"id": "1", "like_count": None}, {"id": "2", "like_count": 7}, {"id": "3", "like_count": None}]



def test_a_value_no_mapper_expects_costs_only_its_own_record():
    """canonical() maps a batch that fails as a whole record by record: the failing record is rejected with the
    error, the others come out as the whole batch would have given them."""
    from transforms.readers.records import Kind, canonical, good_rows

    def mapper(raw, _options):
        if "boom" in raw.column("text").to_pylist():
            raise pa.ArrowInvalid("a value nobody expected")
        return {"id": raw.column("id"), "text": raw.column("text")}

    kind = Kind("flat", None, mapper)
    raw = pa.table({"id": ["1", "2", "3"], "text": ["a", "boom", "c"]})
    rows, reasons = canonical(kind, raw, None, "f.jsonl", [10, 11, 12], [0, 0, 0])
    assert reasons.to_pylist() == [None, "unreadable record: a value nobody expected", None]
    assert rows.column("source_line").to_pylist() == [10, 11, 12]
    assert good_rows(rows, reasons).select(["id", "text", "source_line"]).to_pylist() == [
        {"id": "1", "text": "a", "source_line": 10}, {"id": "3", "text": "c", "source_line": 12}]


def test_a_quote_that_never_closes_costs_its_own_row_only(tmp_path):
    """An opening quote without its closing one would swallow every line after it into one text: its row is
    rejected and the lines after it are read as rows again (fast and slow path alike)."""
    path = tmp_path / "unbalanced.csv"
    path.write_bytes(b'id,text\n1,"my 27"" monitor, love it\n2,second\n3,third\n4,fourth\n')
    tweets, rejects = read(path)
    assert tweets.select(["id", "text", "source_line"]).to_pylist() == [
        {"id": "2", "text": "second", "source_line": 3},
        {"id": "3", "text": "third", "source_line": 4},
        {"id": "4", "text": "fourth", "source_line": 5},
    ]
    assert rejects.select(["source_line", "reason"]).to_pylist() == [
        {"source_line": 2, "reason": "unterminated quoted field: a quote opened on this line never closes"}]


def test_a_quote_closed_by_the_next_rows_opening_quote_is_caught(tmp_path):
    """Balanced in count but paired across rows: the merged record is not well-formed CSV, so the row whose quote
    opened it is rejected and the next row is read on its own. A real line break inside quotes stays."""
    path = tmp_path / "paired.csv"
    path.write_bytes(b'id,text,n\n1,"unterminated,1\n2,"after it",2\n3,"two\nlines",3\n')
    tweets, rejects = read(path)
    assert tweets.select(["id", "text"]).to_pylist() == [{"id": "2", "text": "after it"}, {"id": "3", "text": "two\nlines"}]
    assert [r["source_line"] for r in rejects.to_pylist()] == [2]
    assert rejects.column("reason")[0].as_py().startswith("malformed quoted field across lines")


def test_a_long_text_is_read_on_the_slow_path_too(tmp_path):
    path = tmp_path / "long.csv"
    long_text = "word " * 40_000
    path.write_bytes(f'id,text\n1,a stray " quote\n2,{long_text}\n'.encode())
    tweets, rejects = read(path)
    assert rejects.num_rows == 0 and tweets.column("text").to_pylist() == ['a stray " quote', long_text]


def test_classic_mac_line_ends(tmp_path):
    path = tmp_path / "mac.csv"
    path.write_bytes(b'id,text\r1,hello\r2,"two\rlines"\r3,bye\r')
    tweets, rejects = read(path)
    assert rejects.num_rows == 0
    assert tweets.select(["id", "text", "source_line"]).to_pylist() == [
        {"id": "1", "text": "hello", "source_line": 2},
        {"id": "2", "text": "two\nlines", "source_line": 3},
        {"id": "3", "text": "bye", "source_line": 5},
    ]


def test_a_text_file_that_starts_with_a_magic_number_is_read_as_text(tmp_path):
    """Sniffing a compressed file without its suffix must not swallow a text file that happens to start with the
    same bytes: each of its lines is a reject or a tweet, as in any other file."""
    path = tmp_path / "odd.jsonl"
    path.write_bytes(b'\x1f\x8b\n{"id": "1", "text": "a tweet"}\n')
    tweets, rejects = read(path)
    assert tweets.column("id").to_pylist() == ["1"] and rejects.column("source_line").to_pylist() == [1]
    real = tmp_path / "really-gzip.jsonl"  # a gzip file without its suffix is still read as gzip
    real.write_bytes(gzip.compress(b'{"id": "2", "text": "another"}\n'))
    assert read(real)[0].column("id").to_pylist() == ["2"]
