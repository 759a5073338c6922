"""Property tests: JSON lines mixed with byte garbage never raise, every line is accounted for exactly, and the
result does not depend on how the file is cut into batches."""

from __future__ import annotations

import tempfile
from pathlib import Path

import orjson
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transforms.readers import ReaderOptions, read_inputs

ids = st.integers(min_value=1, max_value=2**63 - 1)
texts = st.text(min_size=1, max_size=40).filter(lambda t: t != "")


@st.composite
def v2_tweet(draw) -> dict:
    padding = "0" * draw(st.integers(0, 2))  # the same tweet id, spelled with leading zeros
    tweet = {"id": padding + str(draw(ids)), "text": draw(texts), "created_at": "2024-01-01T00:00:00.000Z"}
    if draw(st.booleans()):
        tweet["public_metrics"] = {"like_count": draw(st.integers(0, 10**6)), "retweet_count": 0}
    if draw(st.booleans()):
        tweet["referenced_tweets"] = [{"type": draw(st.sampled_from(["retweeted", "quoted"])), "id": str(draw(ids))}]
    return tweet


@st.composite
def v1_tweet(draw) -> dict:
    number = draw(ids)
    return {"id": number, "id_str": str(number), "text": draw(texts), "retweet_count": draw(st.integers(0, 99)),
            "created_at": "Wed Oct 10 20:19:24 +0000 2018", "user": {"id": 7, "id_str": "7"}}


@st.composite
def mutated(draw) -> bytes:
    """A tweet line with bytes inserted or removed somewhere: often broken, sometimes still valid."""
    line = orjson.dumps(draw(st.one_of(v2_tweet(), v1_tweet())))
    at = draw(st.integers(0, len(line)))
    if draw(st.booleans()):
        return line[:at] + draw(st.binary(min_size=1, max_size=4)) + line[at:]
    return line[:at] + line[at + draw(st.integers(1, 4)) :]


def _line(kind_and_payload) -> tuple[bytes, int]:
    """(line bytes without newlines, records it stands for)."""
    kind, payload = kind_and_payload
    if kind == "page":
        return orjson.dumps({"data": payload, "meta": {"result_count": len(payload)}}), len(payload)
    line = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    line = line.replace(b"\n", b" ")
    return line, 1 if line.strip() else 0


lines_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("tweet"), st.one_of(v2_tweet(), v1_tweet())),
        st.tuples(st.just("page"), st.lists(v2_tweet(), min_size=1, max_size=3)),
        st.tuples(st.just("garbage"), st.binary(max_size=60)),
        st.tuples(st.just("garbage"), mutated()),
    ),
    min_size=1,
    max_size=25,
)


def _read(path: Path, batch_bytes: int) -> tuple[pa.Table, pa.Table]:
    batches = list(read_inputs([str(path)], ReaderOptions(batch_bytes=batch_bytes)))
    if not batches:
        return None, None
    return pa.concat_tables([b.tweets for b in batches]), pa.concat_tables([b.rejects for b in batches])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=lines_strategy, batch_bytes=st.integers(min_value=1, max_value=4096))
def test_garbage_never_raises_and_every_line_is_accounted_for(lines, batch_bytes):
    encoded = [_line(item) for item in lines]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mixed.jsonl"
        path.write_bytes(b"\n".join(line for line, _ in encoded) + b"\n")
        tweets, rejects = _read(path, 32 << 20)
        expected = sum(records for _, records in encoded)
        if tweets is None:
            assert expected == 0
            return
        assert tweets.num_rows + rejects.num_rows == expected
        assert all(i.isdigit() and i == str(int(i)) for i in tweets.column("id").to_pylist())  # as uint64 print them
        assert all(rejects.column("reason").to_pylist())
        assert all(1 <= n <= len(encoded) for n in rejects.column("source_line").to_pylist())
        small_tweets, small_rejects = _read(path, batch_bytes)
        assert small_tweets.equals(tweets) and small_rejects.equals(rejects)
