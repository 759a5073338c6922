"""A run's dedupe history (the MinHash state of the rows it publishes), side by side: computed part by part in the
driver process, as the pipeline did before 2026-12-07, and by the engine's workers (Spark local[N], N = cores), as
`Engine.write_history` does now, each worker writing the file of each part it computed.

    .venv/bin/python bench/bench_history.py [--n 1000000] [--part-rows 262144] [--rounds 2] [--json out.json]

Input: bench/corpus.py's rows (TWEET_SCHEMA, eight languages), normalized, in parts of --part-rows. The Spark session
and its Python workers are started, and have set the stage up, before the clock runs (a warm-up on one part). The two
ways alternate for --rounds rounds; prints wall seconds per run and whether both files hold the same rows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from corpus import write_text_corpus  # noqa: E402
from transforms.engines import make_engine  # noqa: E402
from transforms.engines.common import apply_batch_stage  # noqa: E402
from transforms.engines.staging import PartWriter, read_part  # noqa: E402
from transforms.stages.dedupe_minhash import DedupeMinHash  # noqa: E402
from transforms.stages.normalize import Normalize  # noqa: E402


def write_in_driver(stage: DedupeMinHash, parts: list[Path], path: Path) -> None:
    """What the pipeline did before: every part's state computed in the driver process, into one file."""
    writer = None
    for part in parts:
        state = stage.history(read_part(part))
        writer = writer or pq.ParquetWriter(path, state.schema, compression="zstd")
        writer.write_table(state)
    writer.close()


def rows(path: Path) -> pa.Table:
    return pq.read_table(path) if path.is_file() else pa.concat_tables(pq.read_table(f) for f in sorted(path.iterdir()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--part-rows", type=int, default=262_144)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    stage = DedupeMinHash()
    stage.ensure_setup()
    normalize = Normalize()
    normalize.ensure_setup()
    with tempfile.TemporaryDirectory() as work:
        writer = PartWriter(Path(work) / "parts", args.part_rows)
        writer.add(apply_batch_stage(normalize, write_text_corpus(args.n))[0])
        parts = writer.close()
        spark = make_engine("spark", part_rows=args.part_rows, master=f"local[{cores}]", shuffle_partitions=cores)
        spark.write_history(stage, parts[:1], Path(work) / "warm-up")
        ways = {
            "driver, part by part (before)": lambda path: write_in_driver(stage, parts, path),
            f"engine workers, Spark local[{cores}] (now)": lambda path: spark.write_history(stage, parts, path),
        }
        results = {name: [] for name in ways}
        files = {}
        for r in range(args.rounds):
            for i, (name, write) in enumerate(ways.items()):
                path = Path(work) / f"history-{r}-{i}"
                started = time.perf_counter()
                write(path)
                results[name].append(round(time.perf_counter() - started, 2))
                files[name] = path
                print(f"round {r + 1}: {name}: {results[name][-1]} s", flush=True)
        first, second = (rows(f) for f in files.values())
        summary = {"cores": cores, "rows": args.n, "parts": len(parts), "state_rows": first.num_rows,
                   "wall_s": results, "same_rows": first.equals(second)}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
