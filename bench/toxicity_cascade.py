"""The toxicity stage with a transformer for the rows fastText is unsure of: quality and cost by margin.

    .venv/bin/python bench/toxicity_cascade.py --transformer DIR [--margins 0.1 0.2 0.3 1] [--data ../shared/data]
                                               [--device cpu] [--json out.json]

DIR is a folder written by `tweetmill train-toxicity-transformer --out DIR`. For fastText alone and for each margin:
macro-F1 of the stage's `is_toxic` on TweetEval offensive and hate val (evaluation only; nothing here is tuned), the
share of rows the transformer saw there, the share it would see on the ~100k unlabeled English tweets of the shared
data (its cost on tweets not picked for offence; fastText alone decides that share, so it costs nothing to count),
and the stage's throughput (tweets per CPU-second) on the val rows and on --pool-sample of those unlabeled tweets
(one call each; for margin 1 the pool rate is the val rate, not measured again). Margin 1 sends every row to the
transformer. Prints figures only, never tweet text.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from transforms.stages.toxicity import Toxicity, ToxicityConfig, prepare_series, toxic_probability, unsure  # noqa: E402
from transforms.training.toxicity import TASKS, load_split, macro_f1, shared_root  # noqa: E402
from transforms.training.unlabeled import unlabeled_tweets  # noqa: E402


def run(stage: Toxicity, texts: pl.Series) -> tuple[np.ndarray, float, float]:
    stage.ensure_setup()
    wall, cpu = time.perf_counter(), time.process_time()
    flags = stage.annotate(pa.table({"text": texts.to_arrow()})).column("is_toxic").to_numpy(zero_copy_only=False)
    return flags.astype(np.float64), time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transformer", required=True, type=Path)
    parser.add_argument("--margins", type=float, nargs="+", default=[0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 1.0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pool-sample", type=int, default=20_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    val = {task: load_split(args.data / "tweeteval", task, "val") for task in TASKS}
    known = pl.concat([load_split(args.data / "tweeteval", t, s)[0] for t in TASKS for s in ("train", "val")])
    pool, _ = unlabeled_tweets(shared_root(args.data / "tweeteval"), exclude=known)
    fasttext_only = Toxicity(ToxicityConfig())
    fasttext_only.ensure_setup()
    threshold = fasttext_only._threshold
    scores = {name: toxic_probability(fasttext_only._model, prepare_series(texts))
              for name, texts in {"pool": pool, **{t: val[t][0] for t in TASKS}}.items()}

    def share(name: str, margin: float | None) -> float:
        return 0.0 if margin is None else round(float(unsure(scores[name], threshold, margin).mean()), 4)

    rows = []
    for margin in [None, *args.margins]:
        transformer = None if margin is None else {"path": args.transformer, "margin": margin, "device": args.device}
        stage = Toxicity(ToxicityConfig(transformer=transformer))
        row = {"margin": margin}
        wall = cpu = 0.0
        for task in TASKS:
            texts, labels = val[task]
            flags, w, c = run(stage, texts)
            wall, cpu = wall + w, cpu + c
            row[f"{task}_macro_f1"] = round(float(macro_f1(labels, flags, np.array([0.5]))[0]), 4)
            row[f"{task}_share"] = share(task, margin)
        row["pool_share"] = share("pool", margin)
        n = sum(len(val[t][0]) for t in TASKS)
        row["tweets_per_cpu_s"], row["tweets_per_s"] = round(n / cpu), round(n / wall)
        if margin != 1.0:
            sample = pool.sample(min(args.pool_sample, len(pool)), seed=0)
            row["pool_tweets_per_cpu_s"] = round(len(sample) / run(stage, sample)[2])
        rows.append(row)
        print(json.dumps(row), flush=True)

    print(f"\nthreshold {threshold:.2f}; unlabeled pool {len(pool):,} tweets; val rows per task "
          + ", ".join(f"{t} {len(val[t][0]):,}" for t in TASKS))
    print("| margin | offensive val | hate val | share of val rows rescored (off / hate) | share of pool | "
          "tweets/CPU-s, val | tweets/CPU-s, pool |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        name = "fastText alone" if r["margin"] is None else f"{r['margin']:g}"
        pool_rate = f"{r['pool_tweets_per_cpu_s']:,}" if "pool_tweets_per_cpu_s" in r else "(as val)"
        print(f"| {name} | {r['offensive_macro_f1']:.4f} | {r['hate_macro_f1']:.4f} | {r['offensive_share']:.1%} / "
              f"{r['hate_share']:.1%} | {r['pool_share']:.1%} | {r['tweets_per_cpu_s']:,} | {pool_rate} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
