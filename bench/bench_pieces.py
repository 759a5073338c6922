"""Ingest of one large JSON-lines file on Spark and Beam: the file read whole by one task, against read in byte
ranges (readers/pieces.py), with the polars engine's sequential read beside them.

    .venv/bin/python bench/bench_pieces.py [--n 1000000] [--piece-mb 64 256] [--engines spark beam]
                                           [--master local[2]] [--arrow-threads N] [--dir /tmp/tweetmill-bench-pieces]

The file is bench/corpus.py's v2 corpus, in one file. Each run is its own process and times the engine's ingest
alone (for Spark, after its session has started); its memory is the peak summed resident set of its process tree.
"Whole" sets piece_bytes above the file's size, which is how every file was read before pieces. Every run must
give the same rows (ids and source lines, in order) and rejects as polars: the script checks and says so.
--arrow-threads 1 gives each process one thread for Arrow's JSON parser (OMP_NUM_THREADS, which Arrow's thread
pool reads): a task then works on one core, as on a cluster whose executors run one task per core, so what the
pieces spread shows on this machine's two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_engines import run_script  # noqa: E402
from bench.corpus import corpus_file  # noqa: E402

RUN = """
import hashlib, json, shutil, sys, time
from pathlib import Path
import pyarrow as pa
from transforms.engines import make_engine
from transforms.engines.staging import read_part
from transforms.readers import ReaderOptions
path, out, engine, options, piece_bytes = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), int(sys.argv[5])
shutil.rmtree(out, ignore_errors=True)
run = make_engine(engine, part_rows=262_144, **options)
if engine == "spark":
    run.spark  # the session starts here, outside the timing
t = time.perf_counter()
result = run.ingest([path], ReaderOptions(piece_bytes=piece_bytes), Path(out), keep_original=False)
seconds = time.perf_counter() - t
rows = pa.concat_tables([read_part(p, columns=["id", "source_line"]) for p in result.parts])
digest = hashlib.sha256(str(rows.to_pydict()).encode())
print(json.dumps({"seconds": seconds, "records": result.records, "rejected": result.rejected,
                  "parts": len(result.parts), "digest": digest.hexdigest()[:16]}))
"""


def measure(path: Path, out: Path, engine: str, options: dict, piece_bytes: int, arrow_threads: int | None) -> dict:
    env = {"OMP_NUM_THREADS": str(arrow_threads)} if arrow_threads else {}
    return run_script(RUN, [str(path), str(out), engine, json.dumps(options), str(piece_bytes)], f"{engine} ingest",
                      **env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--piece-mb", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--engines", nargs="+", choices=("spark", "beam"), default=["spark", "beam"])
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--arrow-threads", type=int)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/tweetmill-bench-pieces"))
    args = parser.parse_args()
    path = corpus_file(args.dir / "corpus", args.n)
    size = path.stat().st_size
    print(f"{args.n:,} tweets in one file of {size / 1e6:.0f} MB; cores: {os.cpu_count()}; "
          f"Arrow threads per process: {args.arrow_threads or 'all cores'}; load average before: {os.getloadavg()}")
    options_of = {"polars": {}, "spark": {"master": args.master}, "beam": {}}
    runs = [("polars", "whole", size + 1)]
    for engine in args.engines:
        runs += [(engine, "whole", size + 1)] + [(engine, f"{mb} MiB pieces", mb << 20) for mb in args.piece_mb]
    results = []
    for engine, how, piece_bytes in runs:
        r = measure(path, args.dir / f"out-{engine}", engine, options_of[engine], piece_bytes, args.arrow_threads)
        r |= {"engine": engine, "read": how, "pieces": -(-size // piece_bytes)}
        results.append(r)
        print(json.dumps(r), flush=True)
    reference = results[0]
    print("\n| engine | file read | tasks | ingest seconds | tweets/s | peak RSS (tree) | same rows as polars |")
    print("|---|---|---:|---:|---:|---:|---|")
    for r in results:
        same = (r["digest"], r["records"], r["rejected"]) == (reference["digest"], reference["records"],
                                                              reference["rejected"])
        print(f"| {r['engine']} | {r['read']} | {r['pieces']} | {r['seconds']:.1f} | "
              f"{r['records'] / r['seconds']:,.0f} | {r['peak_rss_gb']:.2f} GB | {same} |")


if __name__ == "__main__":
    main()
