"""The polars engine's dedupe_minhash step with its first pass (signatures, band keys, payloads of every part) in one
process, as before 2026-12-07 and as `threads: 1` still runs it, against one worker process per core (the default),
side by side on the same parts.

    .venv/bin/python bench/bench_dedupe_processes.py [--n 1000000] [--part-rows 262144] [--rounds 2] [--json out.json]

Input: bench/corpus.py's rows (TWEET_SCHEMA, eight languages, 10% exact and 10% near duplicates), normalized, in
parts of --part-rows. Each run is the whole step (both passes, the grouping, the drop log), worker start-up
included. The two settings alternate for --rounds rounds; prints wall seconds per run and whether both kept the
same rows and logged the same drops.
"""

from __future__ import annotations

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

from corpus import normalized_parts, step_arguments  # noqa: E402
from transforms.engines.polars import PolarsEngine  # noqa: E402
from transforms.engines.staging import read_part  # noqa: E402
from transforms.stages.dedupe_minhash import DedupeMinHash  # noqa: E402


def main() -> None:
    args = step_arguments(__doc__)
    cores = os.cpu_count() or 1
    settings = {"one process (before; threads: 1)": 1, f"{cores} worker processes (now)": cores}
    results = {name: [] for name in settings}
    outputs = {}
    with tempfile.TemporaryDirectory() as work:
        parts = normalized_parts(Path(work) / "parts", args.n, args.part_rows)
        for r in range(args.rounds):
            for i, (name, threads) in enumerate(settings.items()):
                out = Path(work) / f"out-{r}-{i}"
                started = time.perf_counter()
                result = PolarsEngine(part_rows=args.part_rows, threads=threads).run_stage(
                    DedupeMinHash(), parts, out, False)
                results[name].append(round(time.perf_counter() - started, 2))
                outputs[name] = (pa.concat_tables(read_part(p).select(["id"]) for p in result.parts),
                                 pq.read_table(result.drops).select(["id", "dup_of"]))
                print(f"round {r + 1}: {name}: {results[name][-1]} s", flush=True)
        (kept_a, drops_a), (kept_b, drops_b) = outputs.values()
        summary = {"cores": cores, "rows": args.n, "parts": len(parts), "kept": kept_a.num_rows,
                   "dropped": drops_a.num_rows, "wall_s": results,
                   "same_rows": kept_a.equals(kept_b) and drops_a.equals(drops_b)}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
