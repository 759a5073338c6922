"""Small builders shared by tests: canonical tweet tables and working parts."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

from transforms.engines.staging import write_part
from transforms.schema import TWEET_SCHEMA


def tweets(rows: list[dict]) -> pa.Table:
    """rows: dicts with canonical fields; created_at may be an int (seconds since epoch)."""
    fixed = []
    for i, r in enumerate(rows):
        r = dict(r)
        if isinstance(r.get("created_at"), int):
            r["created_at"] = datetime.fromtimestamp(r["created_at"], tz=timezone.utc)
        r.setdefault("source_file", "test")
        r.setdefault("source_line", i + 1)
        r.setdefault("source_index", 0)
        fixed.append(r)
    return pa.Table.from_pylist(fixed, schema=TWEET_SCHEMA)


def write_parts(table: pa.Table, folder: Path, rows_per_part: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for i, start in enumerate(range(0, max(table.num_rows, 1), rows_per_part)):
        path = folder / f"part-{i:05d}.arrow"
        write_part(table.slice(start, rows_per_part), path)
        parts.append(path)
    return parts


SYNTHETIC_WORDS = np.array("table garden river morning coffee music window train paper bread summer city phone street "
                           "light game friend school water chair cloud market bridge apple".split())
SYNTHETIC_INSULTS = np.array(["idiot", "moron", "scum", "loser"])


def synthetic_toxic_tweets(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Everyday words, and for the toxic half an insult (real words, so a briefly fine-tuned MiniLM learns them)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    words = [" ".join(row) for row in rng.choice(SYNTHETIC_WORDS, size=(n, 7))]
    return [w + (f" you {rng.choice(SYNTHETIC_INSULTS)}" if y else "") for w, y in zip(words, labels)], labels


def small_toxicity_transformer(folder: Path):
    """A toxicity transformer as `tweetmill train-toxicity-transformer` saves one, fine-tuned for one short epoch on
    synthetic tweets (~10 s on a CPU). Returns the teacher, whose predictions the saved files should reproduce."""
    from transforms.training.teacher import Teacher, TeacherSettings

    texts, labels = synthetic_toxic_tweets(400, 0)
    teacher = Teacher(TeacherSettings(epochs=1, lr=2e-4, batch_size=16, max_length=24, threads=1), seed=3)
    teacher.fit(texts, labels)
    teacher.save(folder, val_macro_f1_offensive=0.5)
    return teacher
