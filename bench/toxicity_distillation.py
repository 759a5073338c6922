"""Distillation ablation for the toxicity model: which teacher-labelled rows help the fastText student, and which hurt.

    .venv/bin/python bench/toxicity_distillation.py [--data ../shared/data] [--json out.json]

Fold 0 of the training run's own stratified 5-fold split (seed 0) of each TweetEval train set is held out. The
MiniLM teacher is fine-tuned on the offensive rows outside it (train_toxicity's Corpus, `teacher_held_fold=0`), and
students of the shipped shape (transforms/models/toxicity/metrics.json: params and quantization) are trained on
growing training sets built from the same Corpus' training parts, all without fold 0 (and the shipped set once more
with its words started at random, to show what the teacher's word vectors add). Each is scored on the
held-out offensive and hate rows: macro-F1 at their best shared threshold (an optimistic but equal yardstick for
every row) and at 0.5. Val is not read. Takes ~45 min on 2 cores (teacher fine-tuning and labelling ~100k tweets are most of it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from transforms.stages.toxicity import METRICS_FILE, MODEL_DIR, prepare_series, toxic_probability  # noqa: E402
from transforms.training.teacher import Teacher, TeacherSettings, perturbed_copies  # noqa: E402
from transforms.training.toxicity import (  # noqa: E402
    COPIES,
    TASKS,
    Corpus,
    Params,
    Quantization,
    best_shared_threshold,
    fit,
    load_split,
    macro_f1,
    shuffled,
    tweeteval_dir,
)

HELD = 0


def training_sets(corpus: Corpus, hate_copies: pl.Series, hate_copy_seen: np.ndarray, params: Params) -> dict:
    """Named students: each a list of (texts, labels) parts, all without the held-out fold's rows, and the
    params it is trained with (the shipped ones, or the shipped ones with words started at random)."""
    parts = corpus.training_parts(HELD)
    out = corpus.folds["hate"] != HELD
    completed = [parts["offensive"], parts["hate"]]
    gold = [parts["offensive"], (parts["hate"][0], corpus.labels["hate"][out])]
    pool, copies = [parts["pool"]], [parts["copies"]]
    hate_source = np.repeat(np.arange(len(corpus.labels["hate"])), COPIES)
    hate_out = out[hate_source]
    teacher_says = (hate_copies.filter(pl.Series(hate_out)), hate_copy_seen[hate_out])
    kept_toxic = (teacher_says[0], np.maximum(teacher_says[1], corpus.labels["hate"][hate_source][hate_out]))
    shipped = completed + pool + copies
    at_random = params.model_copy(update={"vector_scale": 0.0})
    return {
        "gold labels only (both sets)": (gold, params),
        "+ hate-set negatives completed by the teacher": (completed, params),
        "+ unlabeled pool (teacher labels where sure)": (completed + pool, params),
        "+ 2 copies of each offensive-set tweet (the shipped recipe)": (shipped, params),
        "the shipped recipe, words started at random (no teacher word vectors)": (shipped, at_random),
        "shipped + 2 copies of each hate-set tweet, teacher labels": (shipped + [teacher_says], params),
        "shipped + 2 copies of each hate-set tweet, hateful ones kept toxic": (shipped + [kept_toxic], params),
    }


def scores(labels: dict, probs: dict) -> dict:
    threshold, best = best_shared_threshold(labels, probs)
    at_half = {t: float(macro_f1(labels[t], probs[t], np.array([0.5]))[0]) for t in TASKS}
    return {"threshold": threshold, "best_shared": best, "at_0.5": at_half}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    shipped = json.loads((MODEL_DIR / METRICS_FILE).read_text())
    params, quantization = Params(**shipped["params"]), Quantization(**shipped["quantization"])

    started = time.perf_counter()
    teacher = Teacher(TeacherSettings(), seed=0)
    corpus = Corpus(args.data, folds=5, seed=0, teacher=teacher, teacher_held_fold=HELD)
    raw_hate = load_split(tweeteval_dir(args.data), "hate", "train")[0].to_list()
    hate_copies = perturbed_copies(raw_hate, COPIES, seed=0)
    hate_copy_seen = (teacher.predict(hate_copies.tolist()) >= 0.5).astype(np.int64)
    hate_copies = prepare_series(pl.Series("text", hate_copies, dtype=pl.String))
    held = {t: corpus.folds[t] == HELD for t in TASKS}
    labels = {t: corpus.labels[t][held[t]] for t in TASKS}
    results = {"teacher_and_labelling_s": round(time.perf_counter() - started), "rows": {}}
    print(f"teacher fine-tuned and labelling done in {results['teacher_and_labelling_s']} s", flush=True)

    raw_offensive = load_split(tweeteval_dir(args.data), "offensive", "train")[0].filter(pl.Series(held["offensive"]))
    teacher_probs = {"offensive": teacher.predict(raw_offensive.to_list())}
    teacher_probs["hate"] = teacher.predict(pl.Series(raw_hate).filter(pl.Series(held["hate"])).to_list())
    results["rows"]["the teacher (MiniLM, offensive train outside fold 0)"] = scores(labels, teacher_probs)
    with tempfile.TemporaryDirectory() as work:
        for name, (parts, student) in training_sets(corpus, hate_copies, hate_copy_seen, params).items():
            texts, train_labels = shuffled(parts, seed=0)
            model = fit(texts, train_labels, student, 0, Path(work), quantization, corpus.word_vectors)
            probs = {t: toxic_probability(model, corpus.texts[t].filter(pl.Series(held[t]))) for t in TASKS}
            results["rows"][name] = scores(labels, probs) | {"train_rows": len(train_labels)}

    print("| training set of the fastText student | rows | offensive | hate | threshold | offensive @0.5 | hate @0.5 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results["rows"].items():
        b, h = r["best_shared"], r["at_0.5"]
        print(
            f"| {name} | {r.get('train_rows', '')} | {b['offensive']:.4f} | {b['hate']:.4f} | {r['threshold']:.2f} "
            f"| {h['offensive']:.4f} | {h['hate']:.4f} |"
        )
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
