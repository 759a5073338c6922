"""Readers on the real payloads in ../shared/data (personal data: assertions compare counts, ids and booleans only,
never print texts or handles)."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from transforms.readers import ReaderOptions, expand_inputs, read_inputs


def read(paths, **options) -> tuple[pa.Table, pa.Table]:
    batches = list(read_inputs([str(p) for p in paths], ReaderOptions(**options)))
    if not batches:
        return None, None
    return pa.concat_tables([b.tweets for b in batches]), pa.concat_tables([b.rejects for b in batches])


def per_file(table: pa.Table) -> Counter:
    return Counter(table.column("source_file").to_pylist()) if table is not None else Counter()


@pytest.fixture(scope="module")
def api(shared_data):
    return shared_data / "api"


@pytest.fixture(scope="module")
def api_read(api):
    """Every API payload read once: (files, tweets, rejects)."""
    files = expand_inputs([str(api / d) for d in ("v1_1", "v2", "archive", "tweepy_cassettes_all")])
    tweets, rejects = read(files)
    return files, tweets, rejects


def test_every_api_payload_ingests_with_the_documented_counts(api, api_read):
    files, tweets, rejects = api_read
    stats = {}
    for line in (api / "_stats.tsv").read_text().splitlines():
        name, rest = line.split("\t", 1)
        found = re.search(r"\btweets=(\d+)", rest)
        stats[name] = int(found.group(1)) if found else 0
    got, bad = per_file(tweets), per_file(rejects)
    assert tweets.num_rows >= sum(stats.values()) > 4000  # cassettes hold more tweets than _stats.tsv lists
    for name, count in stats.items():
        path = str(api / name)
        assert path in files, name
        assert got[path] == count, name
        if count == 0 and name != "v2/twarc_csv_test-data/empty.json":
            assert bad[path] >= 1, name  # a document without tweets is reported, never silently empty
    assert all(i.isdigit() for i in tweets.column("id").to_pylist())


def test_the_malformed_twarc_line_is_rejected_with_its_reason(api, api_read):
    path = api / "v2" / "twarc_csv_test-data" / "streaming_output_with_error.jsonl"
    _, tweets, rejects = api_read
    lines = path.read_bytes().splitlines()
    broken = []
    for number, line in enumerate(lines, 1):
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            broken.append(number)
    mine = rejects.filter(pc.equal(rejects.column("source_file"), str(path)))
    assert broken and mine.column("source_line").to_pylist() == broken
    assert mine.column("reason")[0].as_py().startswith("malformed JSON")
    assert per_file(tweets)[str(path)] == len(lines) - len(broken)


def test_documents_without_tweets_give_one_reject_each(api, api_read):
    _, tweets, rejects = api_read
    twarc = api / "v2" / "twarc_csv_test-data"
    expected = {"users.jsonl": 1, "counts.jsonl": 1, "lists.jsonl": 2, "tweets_compliance.jsonl": 2,
                "users_compliance.jsonl": 2}
    for name, count in expected.items():
        mine = rejects.filter(pc.equal(rejects.column("source_file"), str(twarc / name)))
        assert mine.num_rows == count, name
        assert all(r.startswith("document holds no tweets (") for r in mine.column("reason").to_pylist()), name
        assert per_file(tweets)[str(twarc / name)] == 0
    reasons = dict(zip(rejects.column("source_file").to_pylist(), rejects.column("reason").to_pylist()))
    assert "users response" in reasons[str(twarc / "users.jsonl")]
    assert "tweet counts response" in reasons[str(twarc / "counts.jsonl")]


def test_cassettes_yield_their_tweets_and_nothing_else(api, api_read):
    files, tweets, rejects = api_read
    got, bad = per_file(tweets), per_file(rejects)
    for path in (f for f in files if "tweepy_cassettes_all" in f):
        body = orjson.loads(open(path, "rb").read())["body"]
        if isinstance(body, dict) and "statuses" in body:
            elements = body["statuses"]
        elif isinstance(body, dict) and "data" in body:
            elements = body["data"] if isinstance(body["data"], list) else [body["data"]]
        else:
            elements = body if isinstance(body, list) else [body]
        want = sum(isinstance(e, dict) and "text" in e and "event_type" not in e for e in elements)
        assert got[path] == want, path
        assert (bad[path], got[path] > 0) in ((0, True), (1, False)), path


def test_v1_search_responses_match_their_raw_fields(api):
    for name in ("serde_json_benchmark__twitter.json", "python_twitter__get_search_raw.json"):
        path = api / "v1_1" / name
        statuses = orjson.loads(path.read_bytes())["statuses"]
        tweets, rejects = read([path])
        assert rejects is None or rejects.num_rows == 0
        rows = tweets.to_pylist()
        assert [r["id"] for r in rows] == [s["id_str"] for s in statuses]
        assert [r["retweet_of_id"] for r in rows] == [(s.get("retweeted_status") or {}).get("id_str") for s in statuses]
        assert [r["author_id"] for r in rows] == [s["user"]["id_str"] for s in statuses]
        assert [r["like_count"] for r in rows] == [s["favorite_count"] for s in statuses]
        assert sum(r["text"] != s["text"] for r, s in zip(rows, statuses)) == 0


def test_original_format_and_activity_streams_agree(api):
    original, _ = read([api / "v1_1" / "tweet_parser__original_format_examples.jsonl"])
    activity, _ = read([api / "v1_1" / "tweet_parser__activity_streams_examples.jsonl"])
    lines = (api / "v1_1" / "tweet_parser__original_format_examples.jsonl").read_bytes().splitlines()
    raws = [orjson.loads(x) for x in lines]
    assert original.num_rows == activity.num_rows == len(raws) == 25
    for column in ("id", "created_at", "author_id", "retweet_of_id"):
        assert original.column(column).equals(activity.column(column)), column
    longs = [(r.get("extended_tweet") or {}).get("full_text") or r["text"] for r in raws]
    assert sum(a != b for a, b in zip(original.column("text").to_pylist(), longs)) == 0
    assert sum(r.get("truncated", False) for r in raws) == 5


def test_twarc_flat_and_paged_shapes_agree(api):
    twarc = api / "v2" / "twarc_csv_test-data"
    flat, _ = read([twarc / "flat.jsonl"])
    paged, _ = read([twarc / "noflat.jsonl"])
    for column in ("id", "text", "created_at", "author_id", "retweet_of_id", "quote_of_id", "in_reply_to_id"):
        assert flat.column(column).equals(paged.column(column)), column
    assert paged.column("source_index").to_pylist() == list(range(100))
    refs = Counter()
    for page in (twarc / "noflat.jsonl").read_bytes().splitlines():
        for tweet in orjson.loads(page)["data"]:
            refs.update(r["type"] for r in tweet.get("referenced_tweets", []))
    assert paged.num_rows - paged.column("retweet_of_id").null_count == refs["retweeted"]
    assert paged.num_rows - paged.column("in_reply_to_id").null_count == refs["replied_to"]


def test_account_archive(api):
    folder = api / "archive" / "twitter_archive_milahu104"
    tweets, rejects = read([folder / "tweets.js"])
    content = (folder / "tweets.js").read_bytes()
    raws = [e["tweet"] for e in orjson.loads(content[content.index(b"=") + 1 :])]
    assert rejects is None or rejects.num_rows == 0
    assert tweets.column("id").to_pylist() == [r["id_str"] for r in raws]
    assert sum(a != r["full_text"] for a, r in zip(tweets.column("text").to_pylist(), raws)) == 0
    assert tweets.column("like_count").to_pylist() == [int(r["favorite_count"]) for r in raws]
    assert pc.sum(pc.starts_with(tweets.column("text"), "RT @")).as_py() == 239
    assert tweets.num_rows - tweets.column("in_reply_to_id").null_count == 1780
    assert tweets.column("created_at").null_count == 0
    assert read([folder / "note-tweet.js"]) == (None, None)


def test_broad_twitter_corpus_raw_json(shared_data):
    folder = shared_data / "broad_twitter_corpus" / "raw_json"
    files = expand_inputs([str(folder)])
    tweets, rejects = read(files)
    with_id, without_id = defaultdict(int), defaultdict(int)
    for path in files:
        for line in open(path, "rb"):
            if line.strip():
                raw = orjson.loads(line)
                (with_id if "id_str" in raw else without_id)[path] += 1
    assert per_file(tweets) == Counter(with_id) and per_file(rejects) == Counter(without_id)
    assert set(rejects.column("reason").to_pylist()) == {"record has no id"}
    assert set(tweets.column("source_format").to_pylist()) == {"v1.1"} and tweets.column("author_id").null_count == 0


def test_crisislex_csvs(shared_data):
    folder = shared_data / "crisislex"
    tweets, rejects = read([str(folder / "**" / "*.csv")])
    assert tweets.num_rows == 60_082 + 27_933  # SOURCE.txt: T6 and T26 totals
    assert rejects is None or rejects.num_rows == 0
    assert all(i.isdigit() for i in tweets.column("id").to_pylist())
    assert tweets.column("text").null_count == 0 and set(tweets.column("source_format").to_pylist()) == {"csv"}
