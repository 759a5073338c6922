"""Throughput of the toxicity stage on one core, beside plain fastText predict on the raw strings.

    .venv/bin/python bench/bench_toxicity.py [--n 1000000] [--batch 250000] [--data ../shared/data] [--json out.json]

Input: TweetEval offensive + hate val tweets, repeated to --n rows with seeded changes per copy (a random handle in
place of each @user, half of them made replies to a random handle, a random URL, hashtag, number or emoji run
appended), so that almost all rows differ, as after exact dedupe. The process is pinned to one CPU and polars to one
thread; fastText predicts on one thread anyway.
"stage" = annotate + drop_reasons per Arrow batch, as the engine calls them; "plain" = one model.predict(k=1) per
batch on the raw strings, already a Python list (so it is not charged for the Arrow-to-list conversion).
Prints figures only, never tweet text.
"""

from __future__ import annotations

import os

os.environ["POLARS_MAX_THREADS"] = "1"  # must precede the polars import

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import fasttext  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import pyarrow as pa  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from transforms.stages.toxicity import Toxicity, prepare_series  # noqa: E402
from transforms.training.toxicity import TASKS, load_split  # noqa: E402

TAILS = ["", "", " https://t.co/Qx81kLm", " #MondayMotivation", " 2019", " 😂😂😂", " http://bit.ly/2Ab", "!!!"]


def corpus(data_dir: Path, n: int, seed: int = 0) -> pl.Series:
    base = pl.concat([load_split(data_dir, task, "val")[0] for task in TASKS])
    rng = np.random.default_rng(seed)
    frame = pl.DataFrame(
        {
            "text": base.gather(np.arange(n) % len(base)),
            "handle": pl.Series(rng.integers(0, 10**7, n)).cast(pl.String),
            "tail": pl.Series(np.array(TAILS)[rng.integers(0, len(TAILS), n)]),
            "reply": pl.Series(rng.random(n) < 0.5),
        }
    )
    handle = pl.lit("@u") + pl.col("handle")
    reply = pl.when(pl.col("reply")).then(handle + " ").otherwise(pl.lit(""))
    text = reply + pl.col("text").str.replace_all("@user", handle, literal=True) + pl.col("tail")
    return frame.select(text.alias("text"))["text"]


def clock() -> np.ndarray:
    return np.array([time.perf_counter(), time.process_time()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=250_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    texts = corpus(args.data, args.n)
    batches = [pa.table({"text": texts.slice(s, args.batch).to_arrow()}) for s in range(0, args.n, args.batch)]
    raw = [b.column("text").to_pylist() for b in batches]

    stage = Toxicity()
    stage.ensure_setup()
    model = fasttext.load_model(str(stage.config.model_file()))
    stage.annotate(batches[0].slice(0, 1000))  # warm-up: first-touch of the model's pages

    spent = {"stage": np.zeros(2), "prepare": np.zeros(2), "plain": np.zeros(2)}
    toxic = 0
    for table, strings in zip(batches, raw):
        start = clock()
        cols = stage.annotate(table)
        reasons = stage.drop_reasons(cols)
        spent["stage"] += clock() - start
        toxic += reasons.null_count
        start = clock()
        prepare_series(pl.from_arrow(table.column("text"))).to_list()
        spent["prepare"] += clock() - start
        start = clock()
        model.predict(strings, k=1)
        spent["plain"] += clock() - start

    result = {
        "rows": args.n,
        "batch": args.batch,
        "cpu_pinned": cpu,
        "flagged_toxic_share": round(1 - toxic / args.n, 4),
        **{f"{k}_tweets_per_s_wall": round(args.n / v[0]) for k, v in spent.items()},
        **{f"{k}_tweets_per_s_cpu": round(args.n / v[1]) for k, v in spent.items()},
        "load_average_1min": os.getloadavg()[0],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
