"""Near-duplicate dedupe throughput and memory: the dedupe_minhash stage vs datasketch vs rensa, on the same tweets.

    .venv/bin/python bench/bench_minhash.py [--n 1000000] [--datasketch-n 100000] [--scale-n 4000000]

Input: generated short multilingual tweets (seeded; ~15% are near-duplicates of an earlier tweet: retweets, appended
links or emoji, case changes, truncation with "…", one-word edits), run through the normalize stage once and cached
as Parquet. Every contender reads the same dedupe keys and works at Jaccard threshold 0.5 with 128 permutations:
- dedupe_minhash: the stage as the polars engine runs it (parts of 250k rows: keys + payload, then
  transforms.dedupe.find_representatives with verification);
- datasketch: 5-character shingles in Python, MinHash.bulk, MinHashLSH insert + query, components;
- rensa: the same shingles, RMinHash.from_token_sets, RMinHashLSH (32 x 4 bands: rensa needs bands | num_perm)
  insert + query_all, components.
Each runs in its own process; "peak MB" is that process's peak resident memory (VmHWM, input included). "sig tw/s"
is shingling + MinHash, "dedupe tw/s" everything from the dedupe keys to the representatives, by wall clock;
"cpu s" is the CPU time of those same steps (all threads), the fairer figure on a shared machine. Precision and
recall are against the generator's truth (the near-duplicates it made; independent short tweets of common words
can also collide, and no contender but dedupe_minhash verifies its LSH candidates).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

THRESHOLD = 0.5
NUM_PERM = 128
NGRAM = 5
PART_ROWS = 250_000
SEED = 11


# ------------------------------------------------------------------------------------------------------ input


def _vocabulary(rng: np.random.Generator, size: int) -> np.ndarray:
    """Made-up words in several scripts, so shingles are not all ASCII."""
    syllables = {
        "latin": "ka to ri mu sen la de po in the an er o a chi vo que ment ung lich ção ñe é ü".split(),
        "arabic": "ال م ن ت ب ي ك و ر س ع".split(),
        "cyrillic": "ко ра ни то ст да ве".split(),
        "cjk": "日 本 語 東 京 中 文 字 学 生".split(),
    }
    scripts = rng.choice(list(syllables), size, p=[0.8, 0.08, 0.07, 0.05])
    return np.array(["".join(rng.choice(syllables[s], rng.integers(1, 4))) for s in scripts])


def generate(path: Path, n: int, seed: int = SEED) -> None:
    """n tweets (id, created_at, text, dedupe_key, dup_of_truth) as Parquet; near-duplicates follow their original."""
    from transforms.stages.normalize import Normalize

    rng = np.random.default_rng(seed)
    vocab = _vocabulary(rng, 30_000)
    emoji = ["😂", "🔥", "🙏", "❤️", "👍", "😭", "✨"]
    texts: list[str] = []
    truth = np.full(n, -1, dtype=np.int64)
    is_dup = rng.random(n) < 0.15
    is_dup[:1000] = False
    lengths = rng.integers(4, 28, n)
    weights = 1.0 / (np.arange(len(vocab)) + 2.7)  # Zipf-Mandelbrot word frequencies: "the" ~7% of words
    word_ids = rng.choice(len(vocab), int(lengths.sum()), p=weights / weights.sum())
    ends = np.cumsum(lengths)
    extras = rng.random((n, 3))
    for i in range(n):
        if is_dup[i]:
            src = int(rng.integers(i))
            while truth[src] >= 0:
                src = int(truth[src])
            truth[i] = src
            t = texts[src]
            op = int(rng.integers(6))
            if op == 0:
                t = f"RT @user{rng.integers(10**6)}: {t}"
            elif op == 1:
                t = f"{t} https://t.co/{rng.integers(10**9):x}"
            elif op == 2:
                t = f"{t} {emoji[int(rng.integers(len(emoji)))]}"
            elif op == 3:
                t = t.upper()
            elif op == 4 and len(t) > 40:
                t = t[: int(len(t) * 0.85)] + "…"
            else:
                words = t.split()
                words[int(rng.integers(len(words)))] = str(vocab[int(rng.integers(len(vocab)))])
                t = " ".join(words)
            texts.append(t)
            continue
        t = " ".join(vocab[word_ids[ends[i] - lengths[i] : ends[i]]])
        if extras[i, 0] < 0.3:
            t = f"@user{rng.integers(10**6)} {t}"
        if extras[i, 1] < 0.25:
            t = f"{t} #{vocab[int(rng.integers(len(vocab)))]}"
        if extras[i, 2] < 0.2:
            t = f"{t} https://t.co/{rng.integers(10**9):x}"
        texts.append(t)
    table = pa.table(
        {
            "id": pa.array((np.arange(n) + 10**15).astype(str)),
            "created_at": pa.array(np.arange(n) * 10**6, type=pa.timestamp("us", tz="UTC")),
            "text": pa.array(texts),
            "dup_of_truth": pa.array(truth),
        }
    )
    normalize = Normalize()
    with pq.ParquetWriter(path, table.schema.append(pa.field("dedupe_key", pa.string()))) as writer:
        for start in range(0, n, PART_ROWS):
            part = table.slice(start, PART_ROWS)
            writer.write_table(part.append_column("dedupe_key", normalize.annotate(part).column("dedupe_key")))


def _parts(path: Path, n: int):
    """The first n rows, part by part (as the engine reads them)."""
    seen = 0
    columns = ["id", "created_at", "dedupe_key", "dup_of_truth"]
    for batch in pq.ParquetFile(path).iter_batches(batch_size=PART_ROWS, columns=columns):
        table = pa.Table.from_batches([batch]).slice(0, n - seen)
        seen += table.num_rows
        yield table
        if seen >= n:
            return


def _quality(dropped: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    should = truth >= 0
    tp = int((dropped & should).sum())
    return {"precision": tp / max(int(dropped.sum()), 1), "recall": tp / max(int(should.sum()), 1)}


def _representatives(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rows whose component (over candidate edges a-b) has a smaller row: rows are in preference order here."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    _, label = connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    first = np.full(label.max() + 1 if n else 0, n)
    np.minimum.at(first, label, np.arange(n))
    return first[label] != np.arange(n)


# ------------------------------------------------------------------------------------------------ contenders


class _Clock:
    """Wall and CPU seconds of the measured steps only (reading the input is not measured)."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __enter__(self) -> _Clock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall += time.perf_counter() - self._wall
        self.cpu += time.process_time() - self._cpu


def _result(sig: _Clock, rest: _Clock, dropped: np.ndarray, truth: np.ndarray) -> dict:
    times = {"signature_s": sig.wall, "dedupe_s": sig.wall + rest.wall, "cpu_s": sig.cpu + rest.cpu}
    return {**times, **_quality(dropped, truth)}


def run_stage(path: Path, n: int) -> dict:
    """As the polars engine runs a DedupeStage, except that the long key arrays are preallocated (the engine's
    list + np.concatenate briefly holds them twice)."""
    from transforms.dedupe import find_representatives, preference_rank
    from transforms.stages.dedupe_minhash import DedupeMinHash, MinHashConfig

    stage = DedupeMinHash(MinHashConfig(threshold=THRESHOLD, num_perm=NUM_PERM, ngram=NGRAM))
    n = min(n, pq.ParquetFile(path).metadata.num_rows)
    width = n * stage.config.lsh.bands
    rows, bands, keys = np.empty(width, np.int64), np.empty(width, np.int32), np.empty(width, np.uint64)
    payload = np.empty((n, NUM_PERM), np.uint8)
    created, ids, truth = np.empty(n, np.int64), np.empty(n, np.uint64), np.empty(n, np.int64)
    sig, rest = _Clock(), _Clock()
    offset = filled = 0
    for table in _parts(path, n):
        part = slice(offset, offset + table.num_rows)
        with sig:
            stage.sketch(table)
        with rest:
            k = stage.keys(table)
            payload[part] = stage.payload(table)
            m = k.num_rows
            rows[filled : filled + m] = k.column("row").to_numpy() + offset
            bands[filled : filled + m] = k.column("band").to_numpy()
            keys[filled : filled + m] = k.column("key").to_numpy()
            created[part] = table.column("created_at").cast(pa.int64()).to_numpy()
            ids[part] = table.column("id").cast(pa.uint64()).to_numpy()
        truth[part] = table.column("dup_of_truth").to_numpy()
        filled += m
        offset += table.num_rows
    with rest:
        rank = preference_rank(created, ids)
        verify = lambda a, b: stage.verify(payload[a], payload[b])  # noqa: E731
        rep = find_representatives(rows[:filled], bands[:filled], keys[:filled], rank, verify)
    return _result(sig, rest, rep != np.arange(len(rep)), truth)


def _shingled_parts(path: Path, n: int, encode: bool, clock: _Clock):
    """Per part: (shingle lists, truth); parts keep the Python lists of shingles bounded. Shingling is on `clock`."""
    for table in _parts(path, n):
        with clock:
            keys = table.column("dedupe_key").to_pylist()
            sets = [[k[i : i + NGRAM] for i in range(max(len(k) - NGRAM + 1, 1))] for k in keys]
            if encode:
                sets = [[s.encode() for s in doc] for doc in sets]
        yield sets, table.column("dup_of_truth").to_numpy()


def run_datasketch(path: Path, n: int) -> dict:
    from datasketch import MinHash, MinHashLSH

    sig, rest = _Clock(), _Clock()
    sketches, truth = [], []
    for sets, part_truth in _shingled_parts(path, n, True, sig):
        with sig:
            sketches.extend(MinHash.bulk(sets, num_perm=NUM_PERM))
        truth.append(part_truth)
    with rest:
        lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
        with lsh.insertion_session() as session:
            for i, m in enumerate(sketches):
                session.insert(i, m)
        a, b = [], []
        for i, m in enumerate(sketches):
            found = lsh.query(m)
            a.extend([i] * len(found))
            b.extend(found)
        dropped = _representatives(len(sketches), np.array(a, dtype=np.int64), np.array(b, dtype=np.int64))
    return _result(sig, rest, dropped, np.concatenate(truth))


def run_rensa(path: Path, n: int) -> dict:
    import rensa

    sig, rest = _Clock(), _Clock()
    sketches, truth = [], []
    for sets, part_truth in _shingled_parts(path, n, False, sig):
        with sig:
            sketches.extend(rensa.RMinHash.from_token_sets(sets, NUM_PERM, SEED))
        truth.append(part_truth)
    with rest:
        lsh = rensa.RMinHashLSH(THRESHOLD, NUM_PERM, 32)
        lsh.insert_pairs(list(enumerate(sketches)))
        found = lsh.query_all(sketches)
        counts = np.fromiter((len(f) for f in found), dtype=np.int64, count=len(found))
        a = np.repeat(np.arange(len(found)), counts)
        b = np.fromiter((j for f in found for j in f), dtype=np.int64, count=int(counts.sum()))
        dropped = _representatives(len(sketches), a, b)
    return _result(sig, rest, dropped, np.concatenate(truth))


CONTENDERS = {"dedupe_minhash": run_stage, "datasketch": run_datasketch, "rensa": run_rensa}


# --------------------------------------------------------------------------------------------------------- main


def _child(name: str, path: Path, n: int) -> None:
    result = CONTENDERS[name](path, n)
    # VmHWM: this program's peak resident memory (ru_maxrss would include the parent's, inherited at fork)
    peak_kb = int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))
    print(json.dumps({"name": name, "n": n, **result, "peak_rss_mb": peak_kb / 1024}))


def _measure(name: str, path: Path, n: int) -> dict:
    command = [sys.executable, __file__, "--child", name, "--data", str(path), "--n", str(n)]
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _row(r: dict) -> str:
    return (
        f"{r['name']:<15} {r['n']:>9,} {r['n'] / r['signature_s']:>12,.0f} {r['n'] / r['dedupe_s']:>12,.0f} "
        f"{r['dedupe_s']:>9.1f} {r['cpu_s']:>9.1f} {r['peak_rss_mb']:>9,.0f} {r['precision']:>7.4f} {r['recall']:>7.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--datasketch-n", type=int, default=100_000, help="datasketch is slow: a prefix of this size")
    parser.add_argument("--scale-n", type=int, default=4_000_000, help="the stage alone on this many (0: skip)")
    parser.add_argument("--data", type=Path, default=Path("/tmp/tweetmill_bench_minhash.parquet"))
    parser.add_argument("--child", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.data, args.n)
        return
    total = max(args.n, args.scale_n)
    if not args.data.exists() or pq.ParquetFile(args.data).metadata.num_rows < total:
        t = time.perf_counter()
        generate(args.data, total)
        print(f"generated {total:,} tweets in {time.perf_counter() - t:.0f}s -> {args.data}")
    print(f"threshold {THRESHOLD}, {NUM_PERM} permutations, {NGRAM}-char shingles; wall-clock, one process each")
    head = ("contender", "tweets", "sig tw/s", "dedupe tw/s", "dedupe s", "cpu s", "peak MB", "prec", "recall")
    print(
        f"{head[0]:<15} {head[1]:>9} {head[2]:>12} {head[3]:>12} {head[4]:>9} {head[5]:>9} {head[6]:>9} "
        f"{head[7]:>7} {head[8]:>7}"
    )
    runs = [("dedupe_minhash", args.n), ("rensa", args.n), ("datasketch", args.datasketch_n)]
    if args.datasketch_n != args.n:
        runs += [("dedupe_minhash", args.datasketch_n), ("rensa", args.datasketch_n)]
    if args.scale_n:
        runs.append(("dedupe_minhash", args.scale_n))
    for name, n in runs:
        print(_row(_measure(name, args.data, n)), flush=True)


if __name__ == "__main__":
    main()
