"""polars engine vs Spark engine (local[N]) vs Beam engine (local runner) on the same tweets: the whole pipeline
without semantic dedupe.

    .venv/bin/python bench/bench_engines.py [--sizes 1000000 4000000] [--files 8] [--engines polars spark beam]
                                            [--master local[2]] [--beam-mode multi_processing]
                                            [--dir /tmp/tweetmill-bench-spark] [--json results.json]

The corpus is bench/corpus.py's v2 JSONL (10% exact duplicates, 10% near duplicates, 5% retweets, eight
languages), split into --files files at line boundaries so the Spark engine's one-task-per-file ingest can use
its cores; every engine reads the same files. Each run is its own process; its time is wall-clock from process
start (imports, and for Spark the JVM start, included) to the published Delta version, and its memory is the peak
of the summed resident sets of its whole process tree (driver, JVM, Python workers), sampled every 0.2 s. Each
engine step (ingest, every stage, shards) is timed too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.processes import tree_rss  # noqa: E402
from transforms.stages import CATALOGUE, stage_class  # noqa: E402

RUN = """
import json, shutil, sys, time
t0 = time.perf_counter()
from transforms import pipeline
from transforms.config import load_config
inputs, table, engine, options, stages = sys.argv[1].split(","), sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), sys.argv[5].split(",")
shutil.rmtree(table, ignore_errors=True)
config = load_config(stages=stages, engine=engine, engine_options=options, settings={"pii": {"allow_dev_key": True}})
steps = {}
make_engine = pipeline.make_engine
def timed_engine(*args, **kwargs):  # time each engine step; the rest of the run is the pipeline's own work
    e = make_engine(*args, **kwargs)
    for name in ("ingest", "run_stage", "write_shards"):
        def wrap(*a, _f=getattr(e, name), _n=name, **k):
            t = time.perf_counter(); r = _f(*a, **k)
            steps[a[0].name if _n == "run_stage" else _n] = time.perf_counter() - t
            return r
        setattr(e, name, wrap)
    return e
pipeline.make_engine = timed_engine
startup = 0.0
if engine == "spark":
    from transforms.engines.spark_session import SparkOptions, session
    t = time.perf_counter(); session(SparkOptions(**options)); startup = time.perf_counter() - t
report = pipeline.run(inputs, table, config)
print(json.dumps({"seconds": time.perf_counter() - t0, "spark_startup": startup, "rows_in": report["input_records"],
                  "rows_out": report["output_records"], "steps": steps,
                  "dropped": {s["name"]: s["input"] - s["output"] for s in report["stages"]}}))
"""


def run_script(script: str, args: list[str], what: str, **env: str) -> dict:
    """Run a Python `script` in its own process; the JSON object it prints last, with the peak summed resident
    memory of its process tree (sampled every 0.2 s) as peak_rss_gb."""
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "HF_HUB_OFFLINE": "1", "GX_ANALYTICS_ENABLED": "false",
           "DO_NOT_TRACK": "1", "PYTHONPATH": str(ROOT), **env}
    proc = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, sum(tree_rss(proc.pid).values()))
        time.sleep(0.2)
    out, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{what} failed:\n{err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1]) | {"peak_rss_gb": peak / 2**30}


def measure(inputs: list[Path], table: Path, engine: str, options: dict, stages: list[str]) -> dict:
    started = time.perf_counter()
    result = run_script(RUN, [",".join(map(str, inputs)), str(table), engine, json.dumps(options), ",".join(stages)],
                        f"{engine} run")
    return result | {"engine": engine, "wall": time.perf_counter() - started,
                     "tweets_per_s": result["rows_in"] / result["seconds"]}


def corpus(folder: Path, n: int, files: int) -> list[Path]:
    """bench/corpus.py's v2 corpus of n tweets, split into `files` files at line boundaries (made once, kept)."""
    from bench.corpus import write_v2_jsonl

    folder.mkdir(parents=True, exist_ok=True)
    pieces = sorted(folder.glob(f"v2-{n}-*.jsonl"))
    if len(pieces) == files:
        return pieces
    whole = folder / f"v2-{n}.jsonl"
    write_v2_jsonl(whole, n, seed=0)
    subprocess.run(["split", "-n", f"l/{files}", "-d", "-a", "3", "--additional-suffix=.jsonl", str(whole),
                    str(folder / f"v2-{n}-")], check=True)
    whole.unlink()
    return sorted(folder.glob(f"v2-{n}-*.jsonl"))


def same_shards(a: Path, b: Path) -> bool:
    """Whether two tables (each published once, by this script) hold the same rows in the same order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def rows(table: Path) -> pa.Table:
        return pa.concat_tables([pq.read_table(p).replace_schema_metadata(None)
                                 for p in sorted((table / "data").rglob("*.parquet"))])

    return rows(a).equals(rows(b))


def available_stages() -> list[str]:
    """The catalogue's stages that run here (modules import, model files exist), in pipeline order, less semantic
    dedupe (embedding 1M tweets takes ~1.2 h on a CPU: bench/bench_semantic.py measures it alone)."""
    names = []
    for name in CATALOGUE:
        if name == "dedupe_semantic":
            continue
        try:
            if all(Path(m).is_file() for m in stage_class(name)().resources.model_files):
                names.append(name)
        except Exception:
            continue
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--engines", nargs="+", choices=("polars", "spark", "beam"), default=["polars", "spark"])
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--beam-mode", default="multi_processing",
                        choices=("multi_processing", "multi_threading", "in_memory"))
    parser.add_argument("--dir", type=Path, default=Path("/tmp/tweetmill-bench-spark"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    stages = available_stages()
    print(f"stages: {', '.join(stages)}; cores: {os.cpu_count()}; load average before: {os.getloadavg()}")
    results = []
    for n in args.sizes:
        inputs = corpus(args.dir / "corpus", n, args.files)
        options_of = {"polars": {}, "spark": {"master": args.master}, "beam": {"running_mode": args.beam_mode}}
        for engine in args.engines:
            options = options_of[engine]
            r = measure(inputs, args.dir / f"table-{engine}-{n}", engine, options, stages) | {"size": n}
            results.append(r)
            print(json.dumps(r), flush=True)
    print("\n| tweets | engine | seconds | of which Spark start | tweets/s | peak RSS (tree) | rows out |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['size']:,} | {r['engine']} | {r['seconds']:.1f} | {r['spark_startup']:.1f} | "
              f"{r['tweets_per_s']:,.0f} | {r['peak_rss_gb']:.2f} GB | {r['rows_out']:,} |")
    print("\nseconds per engine step (the rest of a run: imports, validation gate, history, Delta commit):")
    for r in results:
        print(f"  {r['size']:,} {r['engine']}: " + ", ".join(f"{k} {v:.1f}" for k, v in r["steps"].items()))
    for n in args.sizes:
        runs = {r["engine"]: r for r in results if r["size"] == n}
        for engine in [e for e in runs if e != "polars" and "polars" in runs]:
            same = same_shards(args.dir / f"table-polars-{n}", args.dir / f"table-{engine}-{n}")
            print(f"{n:,} tweets: {engine}/polars time ratio {runs[engine]['seconds'] / runs['polars']['seconds']:.2f}, "
                  f"same published rows: {same}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
