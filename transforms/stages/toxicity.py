"""Toxicity scoring with the fastText model this project trains (transforms/training/toxicity.py) and ships in
transforms/models/ (package data, so it travels with the wheel), and optionally, for the rows fastText is least
sure of, with the fine-tuned MiniLM classifier that taught it (`transformer`; TransformerConfig says what it costs).

The model was trained on English TweetEval tweets only, so by default rows that language ID marked as another language
get a null score instead of a confident guess. `prepare` and `toxic_probability` are the single definition of how
text reaches the model: training, evaluation and this stage all go through them.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from transforms.encoder import DEVICE_PATTERN, Encoder, assigned_device, check_device, model_files
from transforms.models import PACKAGED, Packaged, resolve_model
from transforms.stages.base import BatchStage, Resources, StageConfig, in_languages

MODEL_FILE = "toxicity.ftz"
PACKAGED_MODEL = f"toxicity/{MODEL_FILE}"  # inside transforms/models
DEFAULT_MODEL = resolve_model(PACKAGED, PACKAGED_MODEL)
MODEL_DIR = DEFAULT_MODEL.parent
METRICS_FILE = "metrics.json"  # written beside the model by training; holds the tuned threshold
TOXIC_LABEL = "__label__toxic"
CLEAN_LABEL = "__label__clean"
DROP_REASON = "toxic"
TRANSFORMER_INFO = "classifier.json"  # in a saved transformer's folder: how it was made, its threshold, its figures
TRANSFORMER_HEAD = "head.safetensors"  # beside it: the linear head over the mean-pooled encoding

# Entities that survive when text did not pass through the normalize stage (TweetEval's files keep some).
_ENTITIES = (["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"], ["&", "<", ">", '"', "'"])


def prepare(text: pl.Expr) -> pl.Expr:
    """Tweet text -> the model's tokens, vectorized.

    Mentions and URLs are masked the way TweetEval already masks mentions, so real handles in production look like
    the training data. camelCase is split (#BuildTheWall -> # build the wall), digits collapse to 0, punctuation
    and emoji become tokens of their own, because fastText only splits on ASCII whitespace. Runs of spaces are left
    in (fastText skips empty tokens; collapsing them cost a tenth of the stage's time); every other whitespace
    character, newlines (fastText's line end) included, becomes a space first.
    """
    return (
        text.str.replace_all(r"[\s&&[^ ]]", " ")
        .str.replace_many(*_ENTITIES)
        .str.replace_all(r"(?i)\b(?:https?://|www\.)\S+", " http ")
        .str.replace_all(r"@\w+", " @user ")
        .str.replace_all(r"(\p{Ll})(\p{Lu})", "$1 $2")
        .str.to_lowercase()
        .str.replace_all(r"\d+", "0")
        .str.replace_all(r"[^\w\s@]", " $0 ")
    )


def prepare_series(texts: pl.Series) -> pl.Series:
    return texts.to_frame("text").select(prepare(pl.col("text"))).to_series()


def toxic_probability(model, prepared: pl.Series) -> np.ndarray:
    """P(toxic) per prepared text, float32, from one batched fastText call.

    Calls the binding's multilinePredict itself, with the line ends added in polars: the wrapper's predict checks and
    extends every line in a Python loop, and prepared texts are single lines by construction. A softmax model gives
    every line its top label; fastText reports that label's probability plus 1e-5 (it takes log(p + 1e-5)), hence
    the clip.
    """
    if prepared.is_empty():
        return np.empty(0, dtype=np.float32)
    labels, probs = model.f.multilinePredict((prepared + "\n").to_list(), 1, 0.0, "strict")
    top = np.concatenate(probs)
    is_toxic_label = np.fromiter(map(TOXIC_LABEL.__eq__, itertools.chain.from_iterable(labels)), bool, len(labels))
    return np.clip(np.where(is_toxic_label, top, 1.0 - top), 0.0, 1.0).astype(np.float32)


def tuned_threshold(model_path: Path) -> float:
    metrics = model_path.parent / METRICS_FILE
    if not metrics.is_file():
        raise FileNotFoundError(f"no {METRICS_FILE} beside {model_path}: set the toxicity stage's `threshold`")
    return float(json.loads(metrics.read_text())["threshold"])


def transformer_text(text: pl.Expr) -> pl.Expr:
    """Tweet text as the transformer learnt it, TweetEval's: mentions are `@user` and links are gone. (The word
    pieces are lowercased by its tokenizer.)"""
    return (
        text.str.replace_all(r"(?i)\b(?:https?://|www\.)\S+", "")
        .str.replace_all(r"@\w+", "@user")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )


def unsure(probs: np.ndarray, threshold: float, margin: float) -> np.ndarray:
    """Per row: fastText's score lies within `margin` of the threshold, so the transformer scores it again."""
    return np.abs(probs - np.float32(threshold)) <= margin


def onto_threshold(probs: np.ndarray, judged_at: float, threshold: float) -> np.ndarray:
    """Scores of a model judged at `judged_at`, moved onto a scale judged at `threshold` (piecewise linear, so the
    order within each side is kept): a rescored row is toxic exactly when its new score reaches `threshold`, as
    every other row is. float32, as the stage compares."""
    p = probs.astype(np.float64)
    moved = np.where(p < judged_at, p / judged_at * threshold,
                     threshold + (p - judged_at) / (1.0 - judged_at) * (1.0 - threshold)).astype(np.float32)
    at = np.float32(threshold)
    return np.where(p < judged_at, np.minimum(moved, np.nextafter(at, np.float32(0))), np.maximum(moved, at))


class TransformerScorer:
    """The fine-tuned MiniLM classifier `tweetmill train-toxicity-transformer` saves (the fastText model's
    teacher): P(toxic) per text, each row's score independent of its batch (transforms/encoder.py)."""

    def __init__(self, folder: Path, device: str, batch_size: int):
        import torch
        from safetensors.torch import load_file

        info = json.loads((folder / TRANSFORMER_INFO).read_text())
        missing = [key for key in ("threshold", "max_length") if key not in info]
        if missing:
            raise ValueError(f"{folder / TRANSFORMER_INFO} has no {missing[0]!r}: not a transformer saved by "
                             "`tweetmill train-toxicity-transformer`")
        self.threshold = float(info["threshold"])
        self._encoder = Encoder(folder, device, batch_size, int(info["max_length"]))
        head = torch.nn.Linear(self._encoder.hidden_size, 2)
        head.load_state_dict(load_file(str(folder / TRANSFORMER_HEAD)))
        self._head = head.to(self._encoder.device).eval()
        self._softmax = torch.softmax

    def probability(self, texts: pl.Series) -> np.ndarray:
        cleaned = texts.to_frame("text").select(transformer_text(pl.col("text"))).to_series().to_list()
        return self._encoder.apply(cleaned, lambda pooled: self._softmax(self._head(pooled), -1)[:, 1:], 1)[:, 0]


class TransformerConfig(StageConfig):
    """Rows whose fastText score lies within `margin` of the threshold are scored again by a transformer.

    The transformer judges tweets better (TweetEval offensive val, macro-F1: fastText alone 0.7452, the transformer
    alone 0.7701; hate 0.6522 against 0.5939: it learnt offence only) but runs ~500x slower on a CPU (~80 tweets per
    core-second). The default band (0.3 around the shipped threshold 0.42) sends ~1.7% of everyday English tweets to
    it (the stage then does ~4,700 tweets per CPU-second: a GPU's work at scale) and lifts offensive val to 0.7631
    (hate 0.6458); margin 1 sends every row (docs/benchmarks.md has the trade-off by margin).
    """

    path: Path  # a folder written by `tweetmill train-toxicity-transformer`
    margin: float = Field(0.3, ge=0.0, le=1.0)
    device: str = Field("auto", pattern=DEVICE_PATTERN)  # auto: the GPU where torch sees one
    batch_size: int = Field(64, ge=1, le=4096)  # rows per forward pass (every pass has this many)

    def files(self) -> tuple[Path, ...]:
        return (*model_files(self.path), self.path / TRANSFORMER_HEAD, self.path / TRANSFORMER_INFO)


class ToxicityConfig(StageConfig):
    model_path: Packaged | Path = PACKAGED  # "packaged" = the shipped model, resolved where the stage loads
    # None: the threshold tuned at training time (metrics.json beside the model).
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    # Rows whose `lang` is set and not in `languages`: "null" leaves them unscored, "score" scores them anyway.
    non_english: Literal["null", "score"] = "null"
    languages: tuple[str, ...] = ("en",)
    # "drop" removes rows flagged toxic; "annotate" only adds the columns.
    action: Literal["drop", "annotate"] = "drop"
    transformer: TransformerConfig | None = None  # None: fastText alone

    def model_file(self) -> Path:
        return resolve_model(self.model_path, PACKAGED_MODEL)


class Toxicity(BatchStage):
    """Adds `toxicity` (P(toxic), float32) and `is_toxic` (toxicity >= threshold); drops toxic rows if configured.
    With a `transformer`, the rows it rescored carry its score moved onto fastText's scale (onto_threshold)."""

    name = "toxicity"
    Config = ToxicityConfig
    reads = ("text",)  # and `lang`, when language ID ran before
    writes = (pa.field("toxicity", pa.float32()), pa.field("is_toxic", pa.bool_()))

    config: ToxicityConfig

    @property
    def resources(self) -> Resources:
        transformer = self.config.transformer
        if transformer is None:
            return Resources(model_files=(str(self.config.model_file()),))
        return Resources(model_files=(str(self.config.model_file()), *map(str, transformer.files())),
                         gpu=transformer.device != "cpu")

    def on_gpu(self, address: str) -> Toxicity:
        if not self.resources.gpu:
            return self
        transformer = self.config.transformer.model_copy(update={"device": assigned_device(address)})
        return Toxicity(self.config.model_copy(update={"transformer": transformer}))

    def setup(self) -> None:
        import fasttext

        path, transformer = self.config.model_file(), self.config.transformer
        self._model = fasttext.load_model(str(path))
        self._threshold = self.config.threshold if self.config.threshold is not None else tuned_threshold(path)
        self._transformer = None
        if transformer is not None:
            check_device(transformer.device, "settings.toxicity.transformer.device")
            self._transformer = TransformerScorer(transformer.path, transformer.device, transformer.batch_size)
            # Its scores are moved onto the fastText model's scale, where the tuned threshold is the verdict's
            # point: a stricter or looser configured threshold then applies to the rescored rows too.
            tuned = (path.parent / METRICS_FILE).is_file()
            self._scale = tuned_threshold(path) if tuned else self._threshold

    def _scored_rows(self, table: pa.Table) -> pl.Series:
        scored = pc.is_valid(table.column("text")).to_numpy(zero_copy_only=False)
        if self.config.non_english == "null":
            scored &= in_languages(table, self.config.languages)
        return pl.Series("scored", scored)

    def annotate(self, table: pa.Table) -> pa.Table:
        self.ensure_setup()
        scored = self._scored_rows(table)
        texts = pl.from_arrow(table.column("text")).filter(scored)
        probs = toxic_probability(self._model, prepare_series(texts))
        if self._transformer is not None:
            rows = np.flatnonzero(unsure(probs, self._threshold, self.config.transformer.margin))
            rescored = self._transformer.probability(texts.gather(rows))
            probs[rows] = onto_threshold(rescored, self._transformer.threshold, self._scale)
        mask = ~scored.to_numpy()
        values = np.zeros(table.num_rows, dtype=np.float32)
        values[~mask] = probs
        toxicity = pa.array(values, mask=mask)
        is_toxic = pa.array(values >= self._threshold, mask=mask)
        return pa.table([toxicity, is_toxic], schema=pa.schema(self.writes))

    def drop_reasons(self, table: pa.Table) -> pa.Array:
        if self.config.action == "annotate":
            return pa.nulls(table.num_rows, pa.string())
        flagged = pc.fill_null(table.column("is_toxic"), False)
        return pc.if_else(flagged, pa.scalar(DROP_REASON), pa.scalar(None, pa.string())).combine_chunks()
