"""Worker processes and native threads, side by side: the polars engine's toxicity stage with its transformer, run in
one worker process per core, with each worker's OpenMP (torch) pool at one thread (the engine's default,
transforms/engines/common.py WORKER_ENVIRONMENT) and at one thread per core (what workers ran before it, and what
they run when OMP_NUM_THREADS is set to the core count).

    .venv/bin/python bench/bench_worker_threads.py --transformer DIR [--n 3000] [--part-rows 750] [--rounds 2]
                                                   [--margin 1] [--data ../shared/data] [--json out.json]

DIR is a folder written by `tweetmill train-toxicity-transformer --out DIR`. Input: --n tweets built from TweetEval
val texts as bench/bench_toxicity.py builds them (handles, links, tags), in parts of --part-rows, so the engine starts
one worker per core. The two settings alternate for --rounds rounds; each run starts its own workers (their start-up
and model loading are in the figures). Prints wall seconds per run and whether both settings gave the same scores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_toxicity import corpus  # noqa: E402
from transforms.engines.polars import PolarsEngine  # noqa: E402
from transforms.engines.staging import read_part, write_part  # noqa: E402
from transforms.schema import TWEET_SCHEMA, conform  # noqa: E402
from transforms.stages.toxicity import Toxicity, ToxicityConfig  # noqa: E402


def write_input(n: int, data: Path, folder: Path, part_rows: int) -> list[Path]:
    texts = corpus(data / "tweeteval", n).to_arrow()
    created = pa.array([datetime(2024, 1, 1, tzinfo=timezone.utc)] * n, pa.timestamp("ms", tz="UTC"))
    table = conform(pa.table({"id": pa.array([str(10**6 + i) for i in range(n)]), "text": texts,
                              "created_at": created}), TWEET_SCHEMA)
    folder.mkdir(parents=True)
    parts = []
    for i, start in enumerate(range(0, n, part_rows)):
        parts.append(folder / f"part-{i:05d}.arrow")
        write_part(table.slice(start, part_rows), parts[-1])
    return parts


def scores(parts: list[Path]) -> np.ndarray:
    return np.concatenate([read_part(p).column("toxicity").to_numpy(zero_copy_only=False) for p in parts])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transformer", required=True, type=Path)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--part-rows", type=int, default=750)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--margin", type=float, default=1.0)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    settings = {"1 thread per worker (default)": None, f"{cores} threads per worker (before)": str(cores)}
    stage = Toxicity(ToxicityConfig(action="annotate", transformer={
        "path": args.transformer, "margin": args.margin, "device": "cpu"}))
    given = os.environ.pop("OMP_NUM_THREADS", None)
    results = {name: [] for name in settings}
    outputs = {}
    with tempfile.TemporaryDirectory() as work:
        parts = write_input(args.n, args.data, Path(work) / "in", args.part_rows)
        for r in range(args.rounds):
            for name, threads in settings.items():
                if threads is None:
                    os.environ.pop("OMP_NUM_THREADS", None)
                else:
                    os.environ["OMP_NUM_THREADS"] = threads
                started = time.perf_counter()
                result = PolarsEngine(part_rows=args.part_rows, threads=cores).run_stage(
                    stage, parts, Path(work) / f"out-{r}-{len(results[name])}-{threads}", False)
                results[name].append(round(time.perf_counter() - started, 2))
                outputs[name] = scores(result.parts)
                print(f"round {r + 1}: {name}: {results[name][-1]} s", flush=True)
    if given is not None:
        os.environ["OMP_NUM_THREADS"] = given
    first, second = outputs.values()
    same = bool(np.array_equal(first, second, equal_nan=True))
    scored = int(np.count_nonzero(~np.isnan(first)))
    summary = {"cores": cores, "rows": args.n, "rows_scored": scored, "part_rows": args.part_rows,
               "margin": args.margin, "wall_s": results, "same_scores": same}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
