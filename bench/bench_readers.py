"""Ingest throughput of transforms.readers on synthetic API v2 "flat" JSONL, next to bare polars.read_ndjson.

    .venv/bin/python bench/bench_readers.py [--n 1000000] [--path /tmp/tweetmill_bench_v2.jsonl]

The file is generated deterministically (seeded) once and reused; the figures are tweets per second of wall time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transforms.readers import ReaderOptions, read_inputs  # noqa: E402

WORDS = (
    "the a to and of in is for on you it that this my with just be at me so have are not was but your all like "
    "what now get today new love good day time people one can will out about more when its great #news #love "
    "@user https://t.co/abc123XYZ café naïve 東京 😀 🙏 ¡hola! \"quoted\" back\\slash"
).split(" ")


def generate(path: Path, n: int, seed: int = 7) -> None:
    """Write `n` v2 flat tweets (~400 bytes each, like twarc's flattened output minus the expansions)."""
    rng = np.random.default_rng(seed)
    words = np.array(WORDS, dtype=object)
    base_id = 1_400_000_000_000_000_000
    with open(path, "wb") as out:
        for start in range(0, n, 100_000):
            m = min(100_000, n - start)
            lengths = rng.integers(4, 30, m)
            picks = rng.integers(0, len(words), int(lengths.sum()))
            cuts = np.cumsum(lengths)[:-1]
            counts = rng.integers(0, 50, (m, 4))
            kinds = rng.integers(0, 10, m)
            seconds = rng.integers(0, 86_400 * 365, m)
            lines = []
            for i, chunk in enumerate(np.split(picks, cuts)):
                tid = str(base_id + start + i)
                record = {
                    "id": tid,
                    "text": " ".join(words[chunk]),
                    "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(1_640_995_200 + int(seconds[i]))),
                    "author_id": str(10_000 + int(counts[i, 0]) * 7919),
                    "conversation_id": tid,
                    "lang": "en",
                    "public_metrics": dict(zip(("retweet_count", "reply_count", "like_count", "quote_count"),
                                               map(int, counts[i]))),
                    "edit_history_tweet_ids": [tid],
                    "possibly_sensitive": False,
                    "reply_settings": "everyone",
                }
                if kinds[i] < 3:
                    ref = "retweeted" if kinds[i] == 0 else ("quoted" if kinds[i] == 1 else "replied_to")
                    record["referenced_tweets"] = [{"type": ref, "id": str(base_id - 1 - i)}]
                lines.append(orjson.dumps(record))
            out.write(b"\n".join(lines) + b"\n")


def timed(fn) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process over all its threads, rows): on a shared machine the CPU time
    says what the work costs, the wall time what the neighbours left of it."""
    wall, cpu = time.perf_counter(), time.process_time()
    rows = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--path", default="/tmp/tweetmill_bench_v2.jsonl")
    args = parser.parse_args()
    path = Path(args.path)
    if not path.exists() or path.stat().st_size == 0 or sum(1 for _ in open(path, "rb")) != args.n:
        generate(path, args.n)
    size_mb = path.stat().st_size / 1e6

    import polars as pl

    def ours() -> int:
        rows = rejects = 0
        for batch in read_inputs([str(path)], ReaderOptions()):
            rows += batch.tweets.num_rows
            rejects += batch.rejects.num_rows
        assert rejects == 0, rejects
        return rows

    def bare_polars() -> int:
        return pl.read_ndjson(path).height

    ours()  # warm the page cache and imports
    print(f"file: {path} ({size_mb:.0f} MB, {args.n:,} lines, cores: {os.cpu_count()}, "
          f"load average: {os.getloadavg()[0]:.1f})")
    for name, fn in (("read_inputs", ours), ("polars.read_ndjson", bare_polars)):
        wall, cpu, rows = timed(fn)
        print(f"{name:19s} {rows:,} rows in {wall:.2f} s wall = {rows / wall:,.0f} rows/s; "
              f"{cpu:.2f} CPU s = {rows / cpu:,.0f} rows per CPU second")


if __name__ == "__main__":
    main()
