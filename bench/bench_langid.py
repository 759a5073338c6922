"""Throughput of the langid stage on one core, next to plain fastText predict on the raw strings.

    .venv/bin/python bench/bench_langid.py [--n 1000000] [--batch 250000] [--data ../shared/data] [--json out.json]
                                           [--supplement other.ftz]   # time another supplement model

Input: XLM-T val tweets (8 languages), repeated and perturbed (seeded) to --n rows: each copy's words are rotated by
a random offset and random tweet furniture is added (mentions, URLs, hashtags, emoji, numbers, "RT @x:"). From 2,916
base tweets, about 59% of 1M raw texts and 10% of their cleaned texts are distinct (the second share is printed);
neither the stage nor fastText caches anything, so the repeats do not flatter the figures. Pinned to one CPU, polars
to one thread. Stage = annotate + drop_reasons per batch, as the engine calls them; plain = one model.predict(k=1) per
batch on the raw strings (already Python lists, so this side is not charged for the Arrow-to-list conversion).
Only figures are printed, never tweet text.
"""

from __future__ import annotations

import os

os.environ["POLARS_MAX_THREADS"] = "1"  # before polars is imported

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import pyarrow as pa  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transforms.stages.langid import DEFAULT_SUPPLEMENT, LanguageId, LanguageIdConfig, clean_text  # noqa: E402
from transforms.training.langid import XLMT_LANGUAGES, XLMT_ROMANISED, load_xlmt  # noqa: E402

PREFIXES = ["", "", "", "RT @newsdesk: ", "@maria_22 ", "@a @b_c "]
SUFFIXES = ["", "", " https://t.co/Ab12xYz", " #breaking", " 😀😀", " 🙏🏽", " 2024", " http://bit.ly/x1 #tbt", "!!!"]


def corpus(data_dir: Path, n: int, seed: int = 0) -> pl.Series:
    base = load_xlmt(data_dir, "val", XLMT_LANGUAGES | XLMT_ROMANISED)["text"]
    rng = np.random.default_rng(seed)
    frame = pl.DataFrame({"w": base.gather(np.arange(n) % len(base)).str.split(" ")})
    frame = frame.with_columns(
        cut=pl.Series(rng.integers(0, 1 << 16, n)) % pl.col("w").list.len().cast(pl.Int64).clip(1),
        pre=pl.Series(np.array(PREFIXES)[rng.integers(0, len(PREFIXES), n)]),
        suf=pl.Series(np.array(SUFFIXES)[rng.integers(0, len(SUFFIXES), n)]),
    )
    rotated = pl.concat_list(pl.col("w").list.slice(pl.col("cut")), pl.col("w").list.head(pl.col("cut")))
    return frame.select(pl.concat_str(pl.col("pre"), rotated.list.join(" "), pl.col("suf")).alias("text"))["text"]


def timed(fn, *args) -> np.ndarray:
    """(wall, CPU) seconds of one call. CPU time is what the figure per core means when other work shares the core."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return np.array([time.perf_counter() - wall, time.process_time() - cpu])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=250_000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--supplement", type=Path, default=DEFAULT_SUPPLEMENT, help="the supplement to time")
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    texts = corpus(args.data, args.n)
    batches = [pa.table({"text": texts.slice(i, args.batch).to_arrow()}) for i in range(0, args.n, args.batch)]
    raw_lists = [b.column("text").to_pylist() for b in batches]

    stage = LanguageId(LanguageIdConfig(supplement_path=args.supplement))
    setup_s = timed(stage.ensure_setup)[0]

    def run_stage(batch: pa.Table) -> None:
        columns = stage.annotate(batch)
        for name in columns.column_names:
            batch = batch.append_column(name, columns[name])
        stage.drop_reasons(batch)

    def clean(batch: pa.Table) -> pl.Series:
        return pl.DataFrame({"t": pl.from_arrow(batch.column("text"))}).select(clean_text(pl.col("t"))).to_series()

    stage_s = sum(timed(run_stage, b) for b in batches)
    clean_s = sum(timed(clean, b) for b in batches)
    plain_s = sum(timed(stage._lid.predict, raw, 1) for raw in raw_lists)
    cleaned = pl.concat([clean(b) for b in batches])
    general_only = LanguageId(LanguageIdConfig(supplement_path=None))
    general_only.ensure_setup()
    general_s = sum(timed(general_only.annotate, b) for b in batches)

    results = {
        "tweets": args.n,
        "batch": args.batch,
        "distinct_cleaned_share": round(cleaned.n_unique() / args.n, 4),
        "setup_s": round(setup_s, 2),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }
    for name, (wall, cpu) in {
        "stage": stage_s,
        "stage_without_supplement": general_s,
        "cleaning_only": clean_s,
        "plain_fasttext_predict_raw": plain_s,
    }.items():
        results[f"{name}_tweets_per_s_wall"] = round(args.n / wall)
        results[f"{name}_tweets_per_cpu_s"] = round(args.n / cpu)
    for key, value in results.items():
        print(f"{key:42s} {value:>12,}" if isinstance(value, int) else f"{key:42s} {value:>12}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
