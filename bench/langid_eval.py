"""Language-ID accuracy on the shared tweets: plain lid.176 vs the langid stage, per held-out set and language.

    .venv/bin/python bench/langid_eval.py [--data ../shared/data] [--model-path lid.176.bin] [--json out.json]
    .venv/bin/python bench/langid_eval.py --dev     # the tuning grid, on dev splits of the training parts only

Held-out sets: XLM-T val (ar/en/fr/de/it/pt/es; "hindi", romanised, apart) and TweetLID's held-out users (see
transforms/training/langid.py). `--dev` trains a supplement on the training parts minus a dev split (20% of XLM-T
train rows, 20% of the TweetLID train users, seed 1) and scores supplement_weight x supplement_below on that dev
split: the way the stage's defaults were chosen. Only metrics are printed, never tweet text.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transforms.stages.langid import LanguageIdConfig  # noqa: E402
from transforms.training.langid import (  # noqa: E402
    accuracy,
    english_tweets,
    evaluate,
    fit_supplement,
    load_xlmt,
    split_by_user,
    split_tweetlid,
    stage_output,
)

DEV_SEED = 1
DEV_FRACTION = 0.2


def print_results(results: dict) -> None:
    for name, variants in results.items():
        print(f"\n{name}")
        languages = list(next(iter(variants.values()))["per_language"])
        print(f"  {'variant':22s} {'acc':>6s} " + " ".join(f"{lang:>6s}" for lang in languages) + "  kept  top errors")
        for variant, r in variants.items():
            per = " ".join(f"{r['per_language'][lang]:6.3f}" for lang in languages)
            kept = f"{r['kept']:5.3f}" if "kept" in r else "    -"
            errors = ", ".join(f"{k}:{v}" for k, v in r["top_errors"].items())
            print(f"  {variant:22s} {r['accuracy']:6.4f} {per}  {kept}  {errors}")


def dev_grid(data_dir: Path) -> None:
    xlmt = load_xlmt(data_dir, "train")
    dev_rows = np.random.default_rng(DEV_SEED).random(xlmt.height) < DEV_FRACTION
    tweetlid_fit, tweetlid_dev = split_by_user(split_tweetlid(data_dir)[0], DEV_SEED, DEV_FRACTION)
    fit = pl.concat([xlmt.filter(~pl.Series(dev_rows)), tweetlid_fit.drop("user"), english_tweets(data_dir)])
    dev = {"xlmt_dev": xlmt.filter(pl.Series(dev_rows)), "tweetlid_dev": tweetlid_dev.drop("user")}
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "dev.ftz"
        fit_supplement(fit, model)
        print(f"{'weight':>6s} {'below':>6s}  " + "  ".join(f"{n:>12s} {n + '+langs':>18s}" for n in dev))
        for weight in (0.0, 0.3, 0.5, 0.7, 0.85, 1.0):
            for below in (0.5, 0.7, 0.9, 1.0):
                config = LanguageIdConfig(supplement_path=model, supplement_weight=weight, supplement_below=below)
                row = []
                for frame in dev.values():
                    languages = tuple(frame["lang"].unique().sort())
                    for c in (config, config.model_copy(update={"languages": languages})):
                        row.append(accuracy(stage_output(c, frame["text"])["lang"], frame["lang"])["accuracy"])
                cells = "  ".join(f"{a:12.4f} {b:18.4f}" for a, b in zip(row[::2], row[1::2]))
                print(f"{weight:6.2f} {below:6.2f}  {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--model-path", type=Path, help="general LID model (default: the bundled lid.176.ftz)")
    parser.add_argument("--no-supplement", action="store_true")
    parser.add_argument("--dev", action="store_true", help="the tuning grid on dev splits of the training parts")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.dev:
        dev_grid(args.data)
        return
    config = LanguageIdConfig(model_path=args.model_path)
    if args.no_supplement:
        config = config.model_copy(update={"supplement_path": None})
    results = evaluate(args.data, config)
    print_results(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
