"""What every engine shares: step results and the engine-neutral table operations around a stage call."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from transforms.schema import DROP_SCHEMA

Progress = Callable[[int], None]  # called with the number of rows just processed
ORIGINAL_TEXT = "_original_text"  # annotate mode keeps the input text under this name until the end

# Worker processes run one per core, so the native thread pools in them (OpenMP's: torch's, so the toxicity
# transformer's) get one thread each, as Spark gives its Python workers, unless the caller's environment sets a size:
# N workers of N threads each oversubscribe the cores (the transformer's annotate took 20-28% longer so on 2 cores:
# docs/benchmarks.md).
WORKER_ENVIRONMENT = {"OMP_NUM_THREADS": "1"}


def replace_file(path: Path, write) -> None:
    """Write through a private temporary name, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    write(tmp)
    os.replace(tmp, path)


def name_width(n: int) -> int:
    """Digits in the names of n numbered files (parts, tasks): at least five, so names sort in number order."""
    return max(5, len(str(max(n - 1, 0))))


def write_history_part(folder: Path, index: int, parts: int, state: pa.Table | None) -> None:
    """Part `index`'s share of a dedupe stage's state of the rows about to be published (Stage.history), written
    where it was computed as <folder>/part-<index>.parquet (zstd): a run's history is one file per part, so no
    process gathers or copies all of it. Nothing when the stage keeps no state (None)."""
    if state is not None:
        path = folder / f"part-{index:0{name_width(parts)}d}.parquet"
        replace_file(path, lambda tmp: pq.write_table(state, tmp, compression="zstd"))


@dataclass
class StepResult:
    parts: list[Path]
    rows_in: int
    rows_out: int
    drop_reasons: Counter = field(default_factory=Counter)
    drops: Path | None = None


@dataclass
class IngestResult:
    parts: list[Path]
    records: int
    rejected: int
    rejects: Path


def merge_columns(table: pa.Table, columns: pa.Table) -> pa.Table:
    for name in columns.column_names:
        col = columns.column(name)
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, col)
        else:
            table = table.append_column(name, col)
    return table


def first_reason(table: pa.Table, reasons: pa.Array) -> pa.Table:
    """Annotate mode: remember the first stage that would drop each row."""
    if "drop_reason" not in table.column_names:
        return table.append_column("drop_reason", reasons)
    merged = pc.coalesce(table.column("drop_reason"), reasons)
    return table.set_column(table.column_names.index("drop_reason"), "drop_reason", merged)


def drop_rows(table: pa.Table, stage: str, reasons: pa.Array, dup_of: pa.Array | None) -> pa.Table:
    dropped = pc.is_valid(reasons)
    ids = table.column("id").filter(dropped)
    return pa.table(
        {
            "id": ids,
            "stage": pa.array([stage] * len(ids), pa.string()),
            "reason": reasons.filter(dropped),
            "dup_of": dup_of.filter(dropped) if dup_of is not None else pa.nulls(len(ids), pa.string()),
        },
        schema=DROP_SCHEMA,
    )




def batch_stage_output(stage, table: pa.Table) -> tuple[pa.Table, pa.Array]:
    """A batch stage on one table: its own columns, and its drop reasons (null = keep)."""
    added = stage.annotate(table)
    return added, stage.drop_reasons(merge_columns(table, added))


def apply_batch_stage(stage, table: pa.Table) -> tuple[pa.Table, pa.Array]:
    """A batch stage on one table: its columns merged in, and its drop reasons."""
    added, reasons = batch_stage_output(stage, table)
    return merge_columns(table, added), reasons


def candidate_keys(stage, table: pa.Table) -> tuple[pa.Table, tuple[pa.Array, pa.Array] | None]:
    """A dedupe stage's keys for the rows that take part in grouping, and its pinned rows. Pinned rows already
    know their target; in annotate mode, rows an earlier stage would drop are not there in a real run either, so
    they neither keep nor lose against anyone."""
    keys, pins = stage.keys(table), stage.pinned(table)
    out = pc.is_valid(pins[1]) if pins is not None else None
    if "drop_reason" in table.column_names:
        dropped = pc.is_valid(table.column("drop_reason"))
        out = dropped if out is None else pc.or_(out, dropped)
    if out is not None:
        keys = keys.filter(pc.invert(pc.take(out, keys.column("row"))))
    return keys, pins


def dedupe_columns(stage, table: pa.Table, dup_of: pa.Array, cluster_size: pa.Array, pinned) -> tuple[pa.Table, pa.Array]:
    """A dedupe stage's verdict on one table: dup_of (null for kept rows) and cluster size merged in, plus reasons.

    pinned: the stage's (dup_of, reason) for rows whose target was known up front, or None.
    """
    reasons = pc.if_else(pc.is_valid(dup_of), pa.scalar(stage.drop_reason), pa.scalar(None, pa.string()))
    if pinned is not None:
        dup_of = pc.coalesce(pinned[0], dup_of)
        reasons = pc.coalesce(pinned[1], reasons)
    table = merge_columns(table, pa.table({stage.dup_of_column: dup_of, stage.cluster_size_column: cluster_size}))
    return table, reasons
