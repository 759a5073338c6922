"""Prefect orchestration overhead: the same run through the `curate` flow (against a running Prefect server) and
by calling the pipeline steps directly, side by side on the same input.

    .venv/bin/python bench/bench_prefect.py [--n 1000000] [--repeat 5] [--stages normalize,dedupe_exact]

The Prefect server is started first (infra/prefect/start-server.sh, on a free port) and not counted: a scheduled
deployment talks to a server that is already up.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DIRECT = """
import json, shutil, sys, time
from transforms import pipeline
from transforms.config import load_config
shutil.rmtree(sys.argv[2], ignore_errors=True)
t = time.perf_counter()
pipeline.run([sys.argv[1]], sys.argv[2], load_config(stages=sys.argv[3].split(",") if sys.argv[3] else None))
print(json.dumps({"seconds": time.perf_counter() - t}))
"""

FLOW = """
import json, shutil, sys, time
import flows
from flows.curate import curate_here as curate  # what `tweetmill run` calls
from transforms.config import load_config
shutil.rmtree(sys.argv[2], ignore_errors=True)
t = time.perf_counter()
curate([sys.argv[1]], sys.argv[2], load_config(stages=sys.argv[3].split(",") if sys.argv[3] else None))
print(json.dumps({"seconds": time.perf_counter() - t}))
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    from bench.corpus import corpus_file

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dir", default="/tmp/tweetmill-bench")
    ap.add_argument("--repeat", type=int, default=5, help="pairs of runs (direct, then flow)")
    ap.add_argument("--stages", default="", help="comma-separated stages (default: the default pipeline)")
    args = ap.parse_args()
    work = Path(args.dir)
    src = corpus_file(work, args.n)
    home = tempfile.mkdtemp(prefix="prefect-bench-")
    env = {**os.environ, "PREFECT_HOME": home, "PREFECT_PORT": str(_port()), "PREFECT_BIN": str(Path(sys.executable).parent / "prefect")}
    subprocess.run([str(ROOT / "infra/prefect/start-server.sh")], env=env, check=True, capture_output=True)
    env["PREFECT_API_URL"] = f"http://127.0.0.1:{env['PREFECT_PORT']}/api"
    def timed(code: str) -> float:
        out = subprocess.run([sys.executable, "-c", code, str(src), str(work / "table_prefect"), args.stages],
                             env=env, cwd=ROOT,
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]

    try:
        pairs = [(timed(DIRECT), timed(FLOW)) for _ in range(args.repeat)]  # alternated: load drifts hit both alike
    finally:
        subprocess.run([str(ROOT / "infra/prefect/stop-server.sh")], env=env, capture_output=True)
    direct = statistics.median(d for d, _ in pairs)
    flow = statistics.median(f for _, f in pairs)
    overhead = statistics.median(f - d for d, f in pairs)
    for name, sec in (("direct steps", direct), ("prefect flow", flow)):
        print(f"{name:<14} median {sec:6.1f} s  {args.n / sec:>10,.0f} tweets/s")
    print("pairs (direct, flow) s: " + ", ".join(f"({d:.1f}, {f:.1f})" for d, f in pairs))
    print(f"stages: {args.stages or 'the default pipeline'}")
    print(f"prefect overhead, median of pairs: {overhead:+.2f} s ({overhead / direct * 100:+.1f}% of the direct run)")


if __name__ == "__main__":
    main()
