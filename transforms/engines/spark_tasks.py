"""What the Spark engine's Python workers run, inside mapInArrow: one task per input file, working part or shard.

Each task is handed its index (a row of `spark.range(n, numPartitions=n)`), so task i reads input file i or part i
and Spark writes its output as output partition i: the parts stay in input order, as the polars engine keeps them,
and a row's (part, position) is its place in that order. Logs that must keep that order too (rejects, drops) and the
task's counts are written by the task itself, one file per task index, replaced atomically so a retried task
leaves the same files.

Stage logic stays in the stages and transforms/engines/common.py; this module only moves tables in and out.
Stages arrive pickled as their configuration (Stage.__getstate__); each worker process builds and sets up one
instance per (stage, configuration) and keeps it for every later task.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from transforms.engines.common import (
    ORIGINAL_TEXT,
    apply_batch_stage,
    dedupe_columns,
    drop_rows,
    first_reason,
    merge_columns,
)
from transforms.schema import DROP_SCHEMA, REJECT_SCHEMA
from transforms.stages.base import Stage

BATCH_ROWS = 65_536  # rows per Arrow batch handed back to Spark
POSITION_BITS = 32  # a row's id in the dedupe plan: part index << 32 | position in the part
SIGN = np.uint64(1 << 63)

SKETCH_SCHEMA = pa.schema(
    [
        pa.field("row", pa.int64(), nullable=False),
        pa.field("ts", pa.int64(), nullable=False),  # created_at in microseconds, int64 max when missing
        pa.field("idk", pa.int64(), nullable=False),  # uint64 id with its top bit flipped: orders like the uint64
        pa.field("keys", pa.list_(pa.struct([pa.field("band", pa.int32()), pa.field("key", pa.int64())]))),
        pa.field("payload", pa.binary()),
    ]
)
EDGE_SCHEMA = pa.schema([pa.field("src", pa.int64(), nullable=False), pa.field("dst", pa.int64(), nullable=False)])
SHARD_SCHEMA = pa.schema([pa.field("shard", pa.int64()), pa.field("rows", pa.int64())])
MEASURE_SCHEMA = pa.schema([pa.field("part", pa.int64()), pa.field("rows", pa.int64()), pa.field("nbytes", pa.int64())])

_STAGES: dict[tuple[str, str, str], Stage] = {}


def worker_stage(stage: Stage) -> Stage:
    """This worker's set-up instance of `stage` (models load once per worker process, not once per task)."""
    key = (type(stage).__module__, type(stage).__qualname__, stage.config.model_dump_json())
    if key not in _STAGES:
        stage.ensure_setup()
        _STAGES[key] = stage
    return _STAGES[key]


def task_indexes(batches: Iterator[pa.RecordBatch]) -> Iterator[int]:
    for batch in batches:
        yield from batch.column(0).to_pylist()


def name_width(n: int) -> int:
    return max(5, len(str(max(n - 1, 0))))


def replace_file(path: Path, write) -> None:
    """Write through a private temporary name, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_log(folder: Path, index: int, width: int, table: pa.Table, schema: pa.Schema) -> None:
    table = table.select(schema.names).cast(schema)
    replace_file(folder / f"part-{index:0{width}d}.parquet", lambda p: pq.write_table(table, p, compression="zstd"))


def write_stats(folder: Path, index: int, stats: dict) -> None:
    replace_file(folder / f"{index}.json", lambda p: p.write_text(json.dumps(stats)))


def read_stats(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"), key=lambda p: int(p.stem))]


def to_batches(table: pa.Table, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    yield from table.select(schema.names).cast(schema).to_batches(max_chunksize=BATCH_ROWS)


def reason_counts(reasons: pa.Array) -> dict[str, int]:
    if reasons.null_count == len(reasons):
        return {}
    return {item["values"]: item["counts"] for item in pc.value_counts(reasons.drop_null()).to_pylist()}


class _PartTask:
    """Task i reads working part i; subclasses turn it into output rows."""

    def __init__(self, stage: Stage, parts: Sequence[str], out_dir: str, schema: pa.Schema, annotate_only: bool):
        self.stage, self.parts, self.out_dir = stage, list(parts), out_dir
        self.schema, self.annotate_only = schema, annotate_only

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        stage = worker_stage(self.stage)
        for i in task_indexes(batches):
            yield from self.process(stage, i, pq.read_table(self.parts[i]))

    def process(self, stage: Stage, i: int, table: pa.Table) -> Iterator[pa.RecordBatch]:
        raise NotImplementedError

    def finish(self, stage, i: int, table: pa.Table, reasons: pa.Array, dup_of) -> Iterator[pa.RecordBatch]:
        """The polars engine's keep rule, per part: kept rows out (or all rows, tagged, in annotate mode), drops logged."""
        out = Path(self.out_dir)
        if self.annotate_only:
            result = first_reason(table, pc.binary_join_element_wise(stage.name, reasons, ":"))
        else:
            result = table.filter(pc.is_null(reasons))
            drops = drop_rows(table, stage.name, reasons, dup_of)
            write_log(out / "drops.parquet", i, name_width(len(self.parts)), drops, DROP_SCHEMA)
        write_stats(out / "_tasks", i, {"rows_in": table.num_rows, "rows_out": result.num_rows,
                                        "reasons": reason_counts(reasons)})
        yield from to_batches(result, self.schema)


class BatchTask(_PartTask):
    def process(self, stage, i, table):
        table, reasons = apply_batch_stage(stage, table)
        yield from self.finish(stage, i, table, reasons, None)


def _flip(ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Decimal id strings -> int64 whose signed order is the ids' uint64 order (as the polars engine ranks them)."""
    return (ids.cast(pa.uint64()).to_numpy() ^ SIGN).view(np.int64)


def _unflip(values: np.ndarray) -> np.ndarray:
    return values.view(np.uint64) ^ SIGN


class SketchTask(_PartTask):
    """Dedupe pass 1: each grouped row's place, preference keys, band keys and payload (one row per grouped row)."""

    def process(self, stage, i, table):
        n = table.num_rows
        table = merge_columns(table, stage.annotate(table))
        keys = stage.keys(table)
        pins = stage.pinned(table)
        if pins is not None:
            keys = keys.filter(pc.is_null(pc.take(pins[1], keys.column("row"))))
        payload = stage.payload(table)
        rows = keys.column("row").to_numpy()
        order = np.argsort(rows, kind="stable")
        counts = np.bincount(rows, minlength=n)
        grouped = np.flatnonzero(counts)
        offsets = np.concatenate(([0], np.cumsum(counts[grouped]))).astype(np.int32)
        pairs = pa.StructArray.from_arrays(
            [keys.column("band").combine_chunks().cast(pa.int32()).take(order),
             pa.array(keys.column("key").to_numpy().view(np.int64)[order])],
            fields=list(SKETCH_SCHEMA.field("keys").type.value_type),
        )
        ts = pc.fill_null(table.column("created_at").cast(pa.int64()), np.iinfo(np.int64).max).to_numpy()
        stats = {"rows_in": n}
        columns = {
            "row": pa.array((np.int64(i) << POSITION_BITS) | grouped.astype(np.int64)),
            "ts": pa.array(ts[grouped]),
            "idk": pa.array(_flip(table.column("id"))[grouped]),
            "keys": pa.ListArray.from_arrays(pa.array(offsets), pairs),
            "payload": pa.nulls(len(grouped), pa.binary()),
        }
        if payload is not None:
            payload = np.ascontiguousarray(payload[grouped])
            stats["payload"] = {"dtype": payload.dtype.str, "shape": list(payload.shape[1:])}
            columns["payload"] = pack_rows(payload)
        write_stats(Path(self.out_dir) / "_sketch", i, stats)
        yield from to_batches(pa.table(columns), self.schema)


def pack_rows(values: np.ndarray) -> pa.Array:
    """One binary value per row of a fixed-shape numpy array."""
    width = values[0].nbytes if len(values) else 0
    offsets = (np.arange(len(values) + 1, dtype=np.int64) * width).astype(np.int32)
    return pa.Array.from_buffers(pa.binary(), len(values), [None, pa.py_buffer(offsets), pa.py_buffer(values.tobytes())])


def unpack_rows(column: pa.Array | pa.ChunkedArray, dtype: str, shape: Sequence[int]) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    column = column.cast(pa.binary())
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)[column.offset : column.offset + len(column) + 1]
    data = np.frombuffer(column.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]] if len(column) else b""
    return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(len(column), *shape)


class VerifyTask:
    """Keeps the candidate pairs (src, dst) whose payloads (a, b) the stage's verify() accepts."""

    def __init__(self, stage: Stage, dtype: str, shape: Sequence[int]):
        self.stage, self.dtype, self.shape = stage, dtype, list(shape)

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        stage = worker_stage(self.stage)
        for batch in batches:
            a = unpack_rows(batch.column("a"), self.dtype, self.shape)
            b = unpack_rows(batch.column("b"), self.dtype, self.shape)
            ok = pa.array(np.asarray(stage.verify(a, b), dtype=bool))
            yield pa.RecordBatch.from_arrays([batch.column("src"), batch.column("dst")], schema=EDGE_SCHEMA).filter(ok)


class DedupeTask(_PartTask):
    """Dedupe pass 2: the grouping's verdict for part i (written by Spark under verdict/part=i) applied to its rows."""

    def __init__(self, stage, parts, out_dir, schema, annotate_only, verdicts: str):
        super().__init__(stage, parts, out_dir, schema, annotate_only)
        self.verdicts = verdicts

    def process(self, stage, i, table):
        n = table.num_rows
        table = merge_columns(table, stage.annotate(table))
        rep = np.zeros(n, dtype=np.uint64)
        is_dup = np.zeros(n, dtype=bool)
        sizes = np.ones(n, dtype=np.int64)
        folder = Path(self.verdicts) / f"part={i}"
        if folder.is_dir():
            verdict = pq.read_table(folder)
            pos = verdict.column("row").to_numpy() & ((1 << POSITION_BITS) - 1)
            sizes[pos] = verdict.column("size").to_numpy()
            dup = verdict.column("rep_idk")
            has = pc.is_valid(dup).to_numpy(zero_copy_only=False)
            is_dup[pos[has]] = True
            rep[pos[has]] = _unflip(dup.filter(pc.is_valid(dup)).to_numpy())
        dup_of = pc.if_else(pa.array(is_dup), pa.array(rep).cast(pa.string()), pa.scalar(None, pa.string()))
        table, reasons = dedupe_columns(stage, table, dup_of, pa.array(sizes), stage.pinned(table))
        yield from self.finish(stage, i, table, reasons, table.column(stage.dup_of_column))


class IngestTask:
    """Task i reads input file i with the readers; tweets go back to Spark, rejects to rejects.parquet/part-i."""

    def __init__(self, files: Sequence[str], options, out_dir: str, schema: pa.Schema, keep_original: bool):
        self.files, self.options, self.out_dir = list(files), options, out_dir
        self.schema, self.keep_original = schema, keep_original

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from transforms.readers.reader import read_file

        for i in task_indexes(batches):
            rejects, tweets = [REJECT_SCHEMA.empty_table()], 0
            for part in read_file(self.files[i], self.options):
                table = part.tweets
                if self.keep_original:
                    table = table.append_column(ORIGINAL_TEXT, table.column("text"))
                tweets += table.num_rows
                rejects.append(part.rejects)
                yield from to_batches(table, self.schema)
            rejected = pa.concat_tables(rejects)
            out = Path(self.out_dir)
            write_log(out / "rejects.parquet", i, name_width(len(self.files)), rejected, REJECT_SCHEMA)
            write_stats(out / "_tasks", i, {"rows_out": tweets, "rejected": rejected.num_rows})


class MeasureTask:
    """Rows and in-memory bytes of the published columns of each part: what shard sizes are planned from."""

    def __init__(self, parts: Sequence[str], columns: Sequence[str]):
        self.parts, self.columns = list(parts), list(columns)

    def __call__(self, batches):
        for i in task_indexes(batches):
            table = pq.read_table(self.parts[i], columns=self.columns)
            yield pa.RecordBatch.from_pylist([{"part": i, "rows": table.num_rows, "nbytes": table.nbytes}],
                                             schema=MEASURE_SCHEMA)


class ShardTask:
    """Shard k: its slices of the parts, written as the polars engine writes a shard (zstd, bounded row groups)."""

    def __init__(self, plan: Sequence[Sequence[tuple[int, int, int]]], parts: Sequence[str], columns: Sequence[str],
                 paths: Sequence[str], row_group_rows: int):
        self.plan, self.parts, self.columns = plan, list(parts), list(columns)
        self.paths, self.row_group_rows = list(paths), row_group_rows

    def __call__(self, batches):
        for k in task_indexes(batches):
            rows = 0

            def write(path, k=k):
                nonlocal rows
                writer = None
                for p, offset, length in self.plan[k]:  # one slice in memory at a time
                    chunk = pq.read_table(self.parts[p], columns=self.columns).slice(offset, length)
                    chunk = chunk.replace_schema_metadata(None)
                    if writer is None:
                        writer = pq.ParquetWriter(path, chunk.schema, compression="zstd", compression_level=3)
                    writer.write_table(chunk, row_group_size=self.row_group_rows)
                    rows += chunk.num_rows
                writer.close()

            replace_file(Path(self.paths[k]), write)
            yield pa.RecordBatch.from_pylist([{"shard": k, "rows": rows}], schema=SHARD_SCHEMA)
