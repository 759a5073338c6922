"""The gate's work on a large run, as tasks the run's engine runs in its workers: the rows suite's row-wise checks
slice by slice, and each uniqueness in hash buckets of its column. One round of tasks checks a slice each and
spreads it over the buckets; the next checks a bucket each. A task follows transforms/engines/part_tasks.py's
protocol (task index in, one status row out) and hands back its GX validation result; the gate merges them
(expectations/gate.py).

The rows (shards, or the ingested parts) and the bucket folder must be where every worker can read and write them,
as the engines' own parts are."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pyarrow as pa

from expectations import frames
from expectations.validation import validate_apart
from transforms.engines.part_tasks import status, task_indexes

# Runs task(i) for i in 0..n-1 (`work`: a folder the round may use), and hands back their statuses in task order:
# an engine's run_tasks, or part_tasks.run_here (one after another in this process: the gate without an engine).
Runner = Callable[[int, Callable, Path], list[dict]]


@dataclass(frozen=True)
class Check:
    """What one validation of the rows checks: GX's suite name of it, its expectations, their parameters."""

    suite: str
    name: str
    expectations: list[dict]
    params: dict

    def on(self, frame) -> dict:
        return validate_apart(self.suite, self.name, self.expectations, "rows", frame, self.params)


@dataclass(frozen=True)
class SliceTask:
    """Task i: slice i of the rows, read for the row-wise expectations (only the columns they use), which are
    checked on it; and each `unique` column of it spread over the hash buckets under folder/<column>."""

    row_wise: Check
    columns: frozenset[str]
    slices: Sequence[Sequence[frames.Source]]
    unique: tuple[str, ...]
    folder: str

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for i in task_indexes(batches):
            frame = frames.rows_frame(self.slices[i], set(self.columns), self.row_wise.params)
            validation = self.row_wise.on(frame)
            del frame
            for column in self.unique:
                frames.spread_buckets(self.slices[i], i, column, len(self.slices), Path(self.folder) / column)
            yield status(i, validation=validation)


@dataclass(frozen=True)
class BucketTask:
    """Task b: each column's uniqueness on bucket b of it (every value equal to one of its values is there)."""

    checks: tuple[tuple[str, Check], ...]  # (column, its check)
    folder: str

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in task_indexes(batches):
            yield status(b, validations={column: check.on(frames.bucket_frame(Path(self.folder) / column, b, column))
                                         for column, check in self.checks})
