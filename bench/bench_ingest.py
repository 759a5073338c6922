"""Ingest + normalize + exact dedupe throughput and peak memory, side by side with bare polars, at 1M and 4M tweets.

    .venv/bin/python bench/bench_ingest.py [--sizes 1000000 4000000] [--repeat 3] [--dir /tmp/tweetmill-bench]

Each measurement runs in its own process (peak RSS = that process's max resident set). "tweetmill" is the
run's steps: read the JSONL (readers), normalize, exact dedupe, write zstd shards (the figure), then publish (Delta
commit, logs, data card; timed apart). "bare polars"
is the obvious alternative: read_ndjson + the same normalization expressions + a hash + unique, nothing written.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TWEETMILL = """
import json, shutil, sys, time
from transforms.config import load_config
from transforms.pipeline import Curation
src, table, gate = sys.argv[1], sys.argv[2], sys.argv[3] == "gate"
shutil.rmtree(table, ignore_errors=True)
t0 = time.perf_counter()
c = Curation([src], table, load_config(stages=["normalize", "dedupe_exact"]))
steps = {}
def timed(name, fn):
    t = time.perf_counter(); out = fn(); steps[name] = round(time.perf_counter() - t, 2); return out
timed("ingest", c.ingest)
for i, stage in enumerate(c.stages):
    timed(stage.name, lambda: c.run_stage(i))
timed("write_shards", c.write_shards)
core = time.perf_counter() - t0
if gate:
    timed("validate", c.validate)
report = timed("publish", c.publish)
print(json.dumps({"seconds": core, "total": time.perf_counter() - t0, "steps": steps,
                  "rows_in": report["input_records"], "rows_out": report["output_records"]}))
"""

BARE_POLARS = """
import json, sys, time
import polars as pl
from transforms.stages.normalize import dedupe_key, normalize_text, unescape_basic
t = time.perf_counter()
df = pl.read_ndjson(sys.argv[1], schema={"id": pl.String, "text": pl.String, "created_at": pl.String})
df = df.with_columns(normalize_text(unescape_basic(pl.col("text"))).alias("text"))
df = df.with_columns(dedupe_key(pl.col("text")).hash(seed=0).alias("key"))
out = df.sort("created_at", "id").unique("key", keep="first", maintain_order=True)
print(json.dumps({"seconds": time.perf_counter() - t, "rows_in": df.height, "rows_out": out.height}))
"""


def measure(code: str, *args: str) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, cwd=ROOT)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["peak_rss_mb"] = round(peak_kib / 1024) if peak_kib > before else None  # max over children so far
    return result


def measure_isolated(code: str, *args: str) -> dict:
    """Run under /usr/bin/time -v so each process's own peak RSS is reported, not the max over all children."""
    out = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", code, *args], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for line in out.stderr.splitlines():
        if "Maximum resident set size" in line:
            result["peak_rss_mb"] = round(int(line.split(":")[1]) / 1024)
    return result


def median_run(repeat: int, code: str, *args: str) -> dict:
    """The run with the median time of `repeat` (a shared machine's noise moves single runs by 2x)."""
    runs = sorted((measure_isolated(code, *args) for _ in range(repeat)), key=lambda r: r["seconds"])
    return runs[len(runs) // 2] | {"peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
                                   "all_seconds": [round(r["seconds"], 2) for r in runs]}


def main() -> None:
    from bench.corpus import corpus_file

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 4_000_000])
    ap.add_argument("--dir", default="/tmp/tweetmill-bench")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement, alternating; the median is shown")
    args = ap.parse_args()
    work = Path(args.dir)
    rows, steps, spreads = [], [], []
    for n in args.sizes:
        src = corpus_file(work, n)
        size_mb = src.stat().st_size / 1e6
        tm = median_run(args.repeat, TWEETMILL, str(src), str(work / f"table_{n}"), "no-gate")
        bp = median_run(args.repeat, BARE_POLARS, str(src))
        for name, r in (("tweetmill (polars engine)", tm), ("bare polars", bp)):
            rows.append((n, size_mb, name, r["seconds"], r["rows_in"] / r["seconds"], r["peak_rss_mb"], r["rows_out"]))
        steps.append((n, tm["steps"], tm["total"]))
        spreads += [(n, "tweetmill", tm["all_seconds"]), (n, "bare polars", bp["all_seconds"])]
    print(f"{'tweets':>10} {'MB':>6}  {'what':<26} {'seconds':>8} {'tweets/s':>10} {'peak MB':>8} {'kept':>9}")
    for n, mb, name, sec, rate, peak, kept in rows:
        print(f"{n:>10,} {mb:>6.0f}  {name:<26} {sec:>8.1f} {rate:>10,.0f} {peak:>8} {kept:>9,}")
    print("\ntweetmill steps (seconds; 'seconds' above = ingest through write_shards; publish = Delta commit, logs,")
    print("dedupe history and the data card; the quality gate is measured by bench/bench_gate.py):")
    for n, st, total in steps:
        print(f"{n:>10,}  " + "  ".join(f"{k}={v}" for k, v in st.items()) + f"  total={total:.1f}")
    print("\nall runs (seconds): " + "; ".join(f"{n:,} {name}: {secs}" for n, name, secs in spreads))


if __name__ == "__main__":
    main()
