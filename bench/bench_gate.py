"""Time of both data-quality suites, default 1M rows: the curated gate on curated-looking output (every stage's
columns) and the raw suite on the same rows as the ingest step hands them over (Arrow tables).

    .venv/bin/python bench/bench_gate.py [--n 1000000] [--out /tmp/tweetmill_bench_gate]
    .venv/bin/python bench/bench_gate.py --n 4000000 --slice-rows 1000000 --curated-only   # the gate in slices
    .venv/bin/python bench/bench_gate.py --n 8000000 --curated-only --workers 2   # slices in 2 worker processes

`--slice-rows` sets the rows the curated gate holds at once (expectations/gate.py SLICE_ROWS, default 4M: one
frame of every row below it, the obvious way); the peak RSS of the process shows what the gate held. `--workers N`
checks the slices in N worker processes of the polars engine (its run_tasks, as a pipeline run does; default 1:
one after another in this process); the largest worker's peak RSS (sampled every 0.2 s) is reported beside
the driver's. Run once per setting, each in its own process.

Shards are generated deterministically (seeded, tests/curated.py) once per size and reused. Reported: the Great
Expectations import (paid once per process), the check-frame build (polars reads + residual-PII regexes), and the
whole validate_output / validate_input calls (frames, GX validations, result JSON and Data Docs). Target: under 30 s
for 1M rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.processes import tree_rss  # noqa: E402
from expectations import frames, gate  # noqa: E402
from expectations.gate import validate_input, validate_output  # noqa: E402
from expectations.parameters import suite_parameters  # noqa: E402
from tests.curated import ALL_STAGES, curated_rows, report_for, write_shards  # noqa: E402
from transforms.config import PipelineConfig  # noqa: E402
from transforms.engines.part_tasks import run_here  # noqa: E402
from transforms.engines.polars import PolarsEngine  # noqa: E402
from transforms.schema import TWEET_SCHEMA  # noqa: E402

CONFIG = PipelineConfig(settings={"langid": {"languages": ["de", "en", "es", "fr"]}})


def shards_for(n: int, out: Path) -> list[Path]:
    folder = out / f"n{n}" / "data" / "bench"
    shards = sorted(folder.glob("*.parquet"))
    if not shards:
        rows = curated_rows(n, seed=11)
        shards = write_shards(rows, folder, CONFIG.output.shard_max_rows // 2, CONFIG.output.row_group_rows)
    return shards


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=Path("/tmp/tweetmill_bench_gate"))
    ap.add_argument("--slice-rows", type=int, default=gate.SLICE_ROWS)
    ap.add_argument("--curated-only", action="store_true", help="no check-frame timing, no raw suite: peak RSS is the gate's")
    ap.add_argument("--workers", type=int, default=1, help="worker processes for the slices (polars engine)")
    args = ap.parse_args()
    gate.SLICE_ROWS = args.slice_rows
    shards = shards_for(args.n, args.out)
    runner = PolarsEngine(threads=args.workers).run_tasks if args.workers > 1 else run_here
    if args.curated_only:
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        workers_peak, done = [0], threading.Event()

        def sample() -> None:  # the largest worker process, every 0.2 s
            while not done.wait(0.2):
                rss = tree_rss(os.getpid())
                rss.pop(os.getpid(), None)
                workers_peak[0] = max([workers_peak[0], *rss.values()])
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        result = validate_output(shards, config=CONFIG, report=report_for("bench", args.n, ALL_STAGES),
                                 out_dir=args.out / f"n{args.n}" / f"gate-{args.slice_rows}-{args.workers}",
                                 runner=runner)
        done.set()
        sampler.join()
        print(json.dumps({"rows": args.n, "shards": len(shards), "slice_rows": args.slice_rows,
                          "workers": args.workers, "validate_output_s": round(time.perf_counter() - t0, 2),
                          "success": result.success, "peak_rss_mb_before": round(rss_before),
                          "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                          "worker_peak_rss_mb": round(workers_peak[0] / 2**20),
                          "load_average_1min": round(os.getloadavg()[0], 2)}))
        return
    report = report_for("bench", args.n, ALL_STAGES)

    t0 = time.perf_counter()
    import great_expectations  # noqa: F401

    t_import = time.perf_counter() - t0
    params = suite_parameters(CONFIG, [report])
    columns = {"id", "text_length", "residual_pii", "dedupe_hash", "exact_dup_of", "minhash_dup_of", "lang",
               "lang_score", "lang_min_score", "toxicity", "is_toxic"}
    t0 = time.perf_counter()
    frames.rows_frame(shards, columns, params)
    t_frame = time.perf_counter() - t0

    gate_dir = args.out / f"n{args.n}" / "gate"
    shutil.rmtree(gate_dir, ignore_errors=True)
    t0 = time.perf_counter()
    result = validate_output(shards, config=CONFIG, report=report, out_dir=gate_dir)
    t_gate = time.perf_counter() - t0
    tables = [pq.read_table(s, columns=TWEET_SCHEMA.names) for s in shards]  # the canonical columns only
    t0 = time.perf_counter()
    raw = validate_input(tables, out_dir=args.out / f"n{args.n}" / "raw")
    t_raw = time.perf_counter() - t0
    print(json.dumps({
        "rows": args.n,
        "shards": len(shards),
        "gx_import_s": round(t_import, 2),
        "check_frames_s": round(t_frame, 2),
        "validate_output_s": round(t_gate, 2),
        "rows_per_s": round(args.n / t_gate),
        "success": result.success,
        "expectations": result.evaluated,
        "raw_suite_s": round(t_raw, 2),
        "raw_success": raw.success,
    }, indent=1))


if __name__ == "__main__":
    main()
