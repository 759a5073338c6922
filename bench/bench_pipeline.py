"""Every step of one whole run timed on its own: where the time of a full pipeline goes, and the gates' share.

    .venv/bin/python bench/bench_pipeline.py [--n 1000000] [--stages normalize,dedupe_exact,...]

Runs transforms.pipeline.Curation's steps in order on the shared generated corpus (bench/corpus.py), all seven
stages by default, into a fresh table; prints seconds per step and the share of the two data-quality suites (the raw
suite after ingest, the curated gate before publishing), Great Expectations' one-off import included.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ALL_STAGES = "normalize,dedupe_id,dedupe_exact,langid,dedupe_minhash,toxicity,pii"


def main() -> None:
    from bench.corpus import corpus_file
    from transforms.config import load_config
    from transforms.pipeline import Curation

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--stages", default=ALL_STAGES)
    ap.add_argument("--dir", default="/tmp/tweetmill-bench")
    args = ap.parse_args()
    work = Path(args.dir)
    src = corpus_file(work, args.n)
    os.environ.setdefault("TWEETMILL_PII_KEY", "benchmark-only-pseudonym-key")  # the pii stage needs one
    table = work / "table_pipeline"
    shutil.rmtree(table, ignore_errors=True)
    steps: dict[str, float] = {}

    def timed(name, fn):
        t = time.perf_counter()
        fn()
        steps[name] = round(time.perf_counter() - t, 2)

    t0 = time.perf_counter()
    c = Curation([str(src)], table, load_config(stages=args.stages.split(",")))
    timed("ingest", c.ingest)
    timed("validate_input", c.validate_input)
    for i, stage in enumerate(c.stages):
        timed(stage.name, lambda: c.run_stage(i))
    timed("write_shards", c.write_shards)
    timed("validate", c.validate)
    timed("publish", c.publish)
    total = time.perf_counter() - t0
    gates = steps["validate_input"] + steps["validate"]
    print(json.dumps({"tweets": args.n, "total_s": round(total, 1), "steps_s": steps, "gates_s": round(gates, 2),
                      "gates_share": round(gates / total, 3)}, indent=1))


if __name__ == "__main__":
    main()
