"""What a distributed engine's workers run: one task per input piece (a file, a byte range of one, or a run of its
row groups: readers/pieces.py), working part or shard, for Spark (inside mapInArrow) and Beam (inside a ParDo) alike.

Each task is handed its index (a row of `spark.range(n, numPartitions=n)`, or a Beam element), so task i reads input
piece i or part i and writes what it makes under its own index: parts stay in input order, as the polars engine keeps
them, and a row's (part, position) is its place in that order. Tasks write their tables themselves with pyarrow, the
polars engine's way (same writer, same files), and hand the engine back one status row of counts. Measured on 1M
tweets with Spark, this is twice as fast as passing every row through the JVM's Parquet writer, whose row-by-row
conversion of wide rows dominated the batch stages. The engine's own shuffles then read these files when rows must
meet (dedupe).

Stage logic stays in the stages, transforms/engines/common.py and transforms/dedupe.py; this module only moves
tables in and out. Stages arrive pickled as their configuration (Stage.__getstate__); each worker process builds and
sets up one instance per (stage, configuration) and keeps it for every later task.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from transforms.dedupe import band_edges, preference_keys
from transforms.engines.common import (
    ORIGINAL_TEXT,
    apply_batch_stage,
    candidate_keys,
    dedupe_columns,
    drop_rows,
    first_reason,
    merge_columns,
    name_width,
    replace_file,
    write_history_part,
)
from transforms.engines.staging import PartWriter, read_part
from transforms.schema import DROP_SCHEMA, REJECT_SCHEMA
from transforms.stages.base import Stage

KEYS_PER_PARTITION = 4_000_000  # band keys per shuffle partition: bounds a worker's memory in the star step
POSITION_BITS = 32  # a row's place: part index << 32 | position in the part
RANGE_BITS = 33  # a new row's sort number: sorted range << 33 | place in the range (Spark's monotonically_increasing_id)
SIGN = np.uint64(1 << 63)

STATUS_SCHEMA = pa.schema([pa.field("task", pa.int64()), pa.field("status", pa.string())])
EDGE_SCHEMA = pa.schema([pa.field("src", pa.int64(), nullable=False), pa.field("dst", pa.int64(), nullable=False)])
ATTACHED_SCHEMA = pa.schema([*EDGE_SCHEMA, pa.field("a", pa.binary())])

_STAGES: dict[tuple[str, str, str], Stage] = {}


def worker_stage(stage: Stage) -> Stage:
    """This worker's instance of `stage`, one per configuration: its models load once per worker process, not once
    per task, and only in tasks that need them (the stage's annotate sets it up; verifying pairs or reading history
    never loads an encoder)."""
    key = (type(stage).__module__, type(stage).__qualname__, stage.config.model_dump_json())
    return _STAGES.setdefault(key, stage)


def gpu_stage(task: Callable) -> Stage | None:
    """The stage whose models `task` runs on a GPU (a batch stage's or a dedupe stage's annotate, for a stage whose
    resources name a GPU), or None: the one kind of task an engine gives a GPU."""
    if isinstance(task, (BatchTask, SketchTask)) and task.stage.resources.gpu:
        return task.stage
    return None


def part_bits(parts: int, published: int, ranges: int, option: str) -> int:
    """The low bits of a rank that name its part (the new rows' parts, then one per file of published rows). A rank
    is (sort number + published) << bits | part; ValueError where `ranges` sorted ranges would not fit in 63 bits
    (`option`: the engine setting that sets them)."""
    bits = (parts + 1).bit_length()
    if max(RANGE_BITS + ranges.bit_length(), published.bit_length()) + 1 + bits > 63:
        raise ValueError(f"{parts} parts and {ranges} {option} are too many to rank in 64 bits; raise part_rows "
                         f"or lower {option}")
    return bits


def key_partitions(keys: int, at_least: int) -> int:
    """Shuffle partitions for `keys` band keys: at most KEYS_PER_PARTITION each."""
    return max(at_least, -(-keys // KEYS_PER_PARTITION))


def task_indexes(batches: Iterator[pa.RecordBatch]) -> Iterator[int]:
    for batch in batches:
        yield from batch.column(0).to_pylist()


def status(task: int, **values) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([{"task": task, "status": json.dumps(values)}], schema=STATUS_SCHEMA)


def index_batch(i: int) -> pa.RecordBatch:
    """Task index `i` as a task reads it (Spark hands it a batch of spark.range's rows)."""
    return pa.record_batch([pa.array([i], pa.int64())], names=["id"])


def run_task(task: Callable, i: int) -> dict:
    """Task `i`, here: its status row, as the engine that runs it elsewhere would hand it back."""
    (row,) = [row for batch in task(iter([index_batch(i)])) for row in batch.to_pylist()]
    return json.loads(row["status"])


def run_here(n: int, task: Callable, work: Path | None = None) -> list[dict]:
    """Tasks 0..n-1 one after another in this process; their status rows, in task order."""
    return [run_task(task, i) for i in range(n)]


def task_folder(parent: Path, index: int, width: int) -> Path:
    """A task's own output folder, emptied first: a retried task starts clean and writes the same files."""
    folder = parent / f"{index:0{width}d}"
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def write_table(path: Path, table: pa.Table, log_schema: pa.Schema | None = None) -> None:
    """Working data as lz4 (fast, read once more); logs, which get published, as zstd in their fixed schema."""
    if log_schema is not None:
        table = table.select(log_schema.names).cast(log_schema)
    compression = "zstd" if log_schema is not None else "lz4"
    replace_file(path, lambda p: pq.write_table(table, p, compression=compression))


def reason_counts(reasons: pa.Array) -> dict[str, int]:
    if reasons.null_count == len(reasons):
        return {}
    return {item["values"]: item["counts"] for item in pc.value_counts(reasons.drop_null()).to_pylist()}


def write_parts(folder: Path, table: pa.Table, part_rows: int) -> list[str]:
    writer = PartWriter(folder, part_rows)
    writer.add(table)
    return [str(p) for p in writer.close()]


class _PartTask:
    """Task i reads working part i and writes its result as parts/<i>/..., its drops as drops.parquet/part-<i>."""

    def __init__(self, stage: Stage, parts: Sequence[str], out_dir: str, part_rows: int, annotate_only: bool):
        self.stage, self.parts, self.out_dir = stage, list(parts), out_dir
        self.part_rows, self.annotate_only = part_rows, annotate_only

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        stage = worker_stage(self.stage)
        for i in task_indexes(batches):
            yield status(i, **self.process(stage, i, read_part(self.parts[i])))

    def process(self, stage: Stage, i: int, table: pa.Table) -> dict:
        raise NotImplementedError

    def finish(self, stage, i: int, table: pa.Table, reasons: pa.Array, dup_of) -> dict:
        """The polars engine's keep rule, per part: kept rows out (or all rows, tagged, in annotate mode), drops logged."""
        out, width = Path(self.out_dir), name_width(len(self.parts))
        if self.annotate_only:
            result = first_reason(table, pc.binary_join_element_wise(stage.name, reasons, ":"))
        else:
            result = table.filter(pc.is_null(reasons))
            drops = drop_rows(table, stage.name, reasons, dup_of)
            write_table(out / "drops.parquet" / f"part-{i:0{width}d}.parquet", drops, DROP_SCHEMA)
        files = write_parts(task_folder(out / "parts", i, width), result, self.part_rows)
        return {"rows_in": table.num_rows, "rows_out": result.num_rows, "reasons": reason_counts(reasons),
                "files": files}


class BatchTask(_PartTask):
    def process(self, stage, i, table):
        table, reasons = apply_batch_stage(stage, table)
        return self.finish(stage, i, table, reasons, None)


def flip_ids(ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Decimal id strings -> int64 whose signed order is the ids' uint64 order (as the polars engine ranks them)."""
    return signed(ids.cast(pa.uint64()).to_numpy())


def signed(values: np.ndarray) -> np.ndarray:
    """uint64 -> int64 in the same order (Spark sorts signed longs)."""
    return (values ^ SIGN).view(np.int64)


def unflip_ids(values: np.ndarray) -> np.ndarray:
    return values.view(np.uint64) ^ SIGN


def places(i: int, n: int) -> np.ndarray:
    return (np.int64(i) << POSITION_BITS) | np.arange(n, dtype=np.int64)


class OrderTask:
    """Dedupe pass 0: each row's place and preference keys (created_at, id, tie break), for Spark to rank rows by."""

    def __init__(self, parts: Sequence[str], out_dir: str):
        self.parts, self.out_dir = list(parts), out_dir

    def __call__(self, batches):
        for i in task_indexes(batches):
            table = read_part(self.parts[i], columns=["id", "created_at", "text"])
            created, ids, ties = preference_keys(table)
            nodes = pa.table({"row": places(i, table.num_rows), "ts": created, "idk": signed(ids), "tie": signed(ties)})
            write_table(Path(self.out_dir) / f"part-{i:0{name_width(len(self.parts))}d}.parquet", nodes)
            yield status(i, rows=table.num_rows)


ANNOTATIONS = "annotations"  # under a dedupe step's work folder: the stage's own columns, per part


class SketchTask(_PartTask):
    """Dedupe pass 1: band keys (rank, band, key) of part i's grouped rows, and their verification payloads."""

    def __init__(self, stage, parts, out_dir, part_rows, annotate_only, ranks: str):
        super().__init__(stage, parts, out_dir, part_rows, annotate_only)
        self.ranks = ranks

    def process(self, stage, i, table):
        n = table.num_rows
        added = stage.annotate(table)
        out, name = Path(self.out_dir), f"part-{i:0{name_width(len(self.parts))}d}.parquet"
        if added.num_columns:  # pass 2 (DedupeTask) reads them back: an embedding is computed once per row
            write_table(out / ANNOTATIONS / name, added)
        table = merge_columns(table, added)
        keys, _ = candidate_keys(stage, table)
        payload = stage.payload(table)
        rank = np.zeros(n, dtype=np.int64)
        if n:
            ranked = pq.read_table(Path(self.ranks) / f"part={i}", columns=["row", "rank"])
            rank[ranked.column("row").to_numpy() & ((1 << POSITION_BITS) - 1)] = ranked.column("rank").to_numpy()
        rows = keys.column("row").to_numpy()
        band_keys = pa.table({"rank": pa.array(rank[rows]), "band": keys.column("band").cast(pa.int32()),
                              "key": pa.array(keys.column("key").to_numpy().view(np.int64))})
        write_table(out / "keys" / name, band_keys)
        result = {"keys": len(rows)}
        if payload is not None:
            grouped = np.unique(rows)
            values = np.ascontiguousarray(payload[grouped])
            write_table(out / "payloads" / name, pa.table({"rank": pa.array(rank[grouped]), "payload": pack_rows(values)}))
            result["payload"] = {"dtype": values.dtype.str, "shape": list(payload.shape[1:])}
        return result


def pack_rows(values: np.ndarray) -> pa.Array:
    """One binary value per row of a fixed-shape numpy array."""
    width = values[0].nbytes if len(values) else 0
    offsets = np.arange(len(values) + 1, dtype=np.int64) * width
    data = pa.py_buffer(values.tobytes())
    return pa.Array.from_buffers(pa.large_binary(), len(values), [None, pa.py_buffer(offsets), data]).cast(pa.binary())


def unpack_rows(column: pa.Array | pa.ChunkedArray, dtype: str, shape: Sequence[int]) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    column = column.cast(pa.large_binary())
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int64)[column.offset : column.offset + len(column) + 1]
    data = np.frombuffer(column.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]] if len(column) else b""
    return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(len(column), *shape)


def bucket_stars(batches: Iterator[pa.RecordBatch], pairs_upto: int = 2) -> Iterator[pa.RecordBatch]:
    """All (rank, band, key) rows of some buckets (a hash partition) -> candidate edges, band by band with
    transforms.dedupe's own builder: stars (src = the bucket's smallest rank, dst = each other member), and every
    pair of buckets up to `pairs_upto` members."""
    batches = list(batches)
    if not batches:
        return
    table = pa.Table.from_batches(batches)
    rank, band, key = (table.column(c).to_numpy() for c in ("rank", "band", "key"))
    for b in np.unique(band):
        sel = band == b
        src, dst = band_edges(rank[sel], key[sel], pairs_upto)
        keep = src != dst
        yield pa.RecordBatch.from_arrays([pa.array(src[keep]), pa.array(dst[keep])], schema=EDGE_SCHEMA)


def rank_positions(known: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Where each of `ranks` is in `known` (a part's stored ranks, in any order; every one of `ranks` is there)."""
    order = np.argsort(known)
    return order[np.searchsorted(known, ranks, sorter=order)]


def _payload_lookup(folder: Path, name: str, ranks: np.ndarray) -> pa.Array:
    """The payloads of `ranks`, all rows of one part, from that part's payload file."""
    stored = pq.read_table(folder / name)
    found = rank_positions(stored.column("rank").to_numpy(), ranks)
    return stored.column("payload").take(pa.array(found)).combine_chunks()


class _ByPart:
    """Candidate pairs grouped by the part that one end's rank names (its low bits; a published row's: its history
    file's, numbered after the new rows' parts)."""

    def __init__(self, payloads: str, parts: int, mask: int):
        self.payloads, self.width, self.mask = Path(payloads), name_width(parts), mask

    def by_part(self, batches: Iterator[pa.RecordBatch], end: str) -> Iterator[tuple[pa.Table, pa.Array]]:
        """(pairs, payloads of their `end` rows), one part at a time, each part's payload file read once."""
        batches = list(batches)
        if not batches:
            return
        pairs = pa.Table.from_batches(batches)
        parts = pairs.column(end).to_numpy() & self.mask
        for part in np.unique(parts):
            chunk = pairs.filter(pa.array(parts == part))
            name = f"part-{int(part):0{self.width}d}.parquet"
            yield chunk, _payload_lookup(self.payloads, name, chunk.column(end).to_numpy())


class AttachTask(_ByPart):
    """Pairs hash-partitioned by their src's part: each gets its src payload (payloads stay where they were
    written; only the pairs travel, once with one payload)."""

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for chunk, a in self.by_part(batches, "src"):
            yield pa.RecordBatch.from_arrays([chunk.column("src").combine_chunks(), chunk.column("dst").combine_chunks(),
                                              a], schema=ATTACHED_SCHEMA)


class VerifyTask(_ByPart):
    """Pairs with their src payload, hash-partitioned by their dst's part: keeps the pairs whose payloads the
    stage's verify() accepts."""

    def __init__(self, stage: Stage, payloads: str, parts: int, mask: int, dtype: str, shape: Sequence[int]):
        super().__init__(payloads, parts, mask)
        self.stage, self.dtype, self.shape = stage, dtype, list(shape)

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        stage = worker_stage(self.stage)
        for chunk, b in self.by_part(batches, "dst"):
            ok = np.asarray(stage.verify(unpack_rows(chunk.column("a"), self.dtype, self.shape),
                                         unpack_rows(b, self.dtype, self.shape)), dtype=bool)
            kept = chunk.filter(pa.array(ok))
            yield pa.RecordBatch.from_arrays([kept.column("src").combine_chunks(), kept.column("dst").combine_chunks()],
                                             schema=EDGE_SCHEMA)


class DedupeTask(_PartTask):
    """Dedupe pass 2: the grouping's verdict for part i (written by Spark under verdict/part=i) applied to its rows,
    with the stage's columns as pass 1 wrote them (SketchTask)."""

    def __init__(self, stage, parts, out_dir, part_rows, annotate_only, verdicts: str, ranks: str, work: str):
        super().__init__(stage, parts, out_dir, part_rows, annotate_only)
        self.verdicts, self.ranks, self.work = verdicts, ranks, work

    def process(self, stage, i, table):
        n = table.num_rows
        stored = Path(self.work) / ANNOTATIONS / f"part-{i:0{name_width(len(self.parts))}d}.parquet"
        table = merge_columns(table, pq.read_table(stored) if stored.is_file() else stage.annotate(table))
        rep = np.zeros(n, dtype=np.uint64)
        is_dup = np.zeros(n, dtype=bool)
        sizes = np.ones(n, dtype=np.int64)
        folder = Path(self.verdicts) / f"part={i}"
        if folder.is_dir():
            verdict = pq.read_table(folder)
            ranked = pq.read_table(Path(self.ranks) / f"part={i}", columns=["row", "rank"])
            found = rank_positions(ranked.column("rank").to_numpy(), verdict.column("node").to_numpy())
            pos = ranked.column("row").to_numpy()[found] & ((1 << POSITION_BITS) - 1)
            sizes[pos] = verdict.column("size").to_numpy()
            dup = verdict.column("rep_idk")
            has = pc.is_valid(dup).to_numpy(zero_copy_only=False)
            is_dup[pos[has]] = True
            rep[pos[has]] = unflip_ids(dup.filter(pc.is_valid(dup)).to_numpy())
        dup_of = pc.if_else(pa.array(is_dup), pa.array(rep).cast(pa.string()), pa.scalar(None, pa.string()))
        table, reasons = dedupe_columns(stage, table, dup_of, pa.array(sizes), stage.pinned(table))
        return self.finish(stage, i, table, reasons, table.column(stage.dup_of_column))


class CountTask:
    """Task i counts the lines of byte range i of a JSON-lines file (readers/pieces.count_piece)."""

    def __init__(self, pieces: Sequence, options):
        self.pieces, self.options = list(pieces), options

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from transforms.readers.pieces import count_piece

        for i in task_indexes(batches):
            yield status(i, **count_piece(self.pieces[i], self.options))


class IngestTask:
    """Task i reads input piece i (readers/pieces.py: a file, a byte range or a run of row groups) into
    parts/<i>/...; its rejects go to rejects.parquet/part-<i>."""

    def __init__(self, pieces: Sequence, options, out_dir: str, part_rows: int, keep_original: bool):
        self.pieces, self.options, self.out_dir = list(pieces), options, out_dir
        self.part_rows, self.keep_original = part_rows, keep_original

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from transforms.readers.pieces import read_piece

        out, width = Path(self.out_dir), name_width(len(self.pieces))
        for i in task_indexes(batches):
            writer = PartWriter(task_folder(out / "parts", i, width), self.part_rows)
            rejects = [REJECT_SCHEMA.empty_table()]
            for part in read_piece(self.pieces[i], self.options):
                table = part.tweets
                if self.keep_original:
                    table = table.append_column(ORIGINAL_TEXT, table.column("text"))
                writer.add(table)
                rejects.append(part.rejects)
            rejected = pa.concat_tables(rejects)
            write_table(out / "rejects.parquet" / f"part-{i:0{width}d}.parquet", rejected, REJECT_SCHEMA)
            files = [str(p) for p in writer.close()]
            yield status(i, rows_out=writer.rows, rejected=rejected.num_rows, files=files)


def plan_shards(measures: Sequence[tuple[int, int]], max_rows: int, max_bytes: int) -> list[list[tuple[int, int, int]]]:
    """Shards as slices (part, offset, length) of the parts in order, bounded as the polars engine bounds them.

    measures: (rows, in-memory bytes of the published columns) per part."""
    shards: list[list[tuple[int, int, int]]] = []
    rows = nbytes = 0
    full = True
    for part, (n, size) in enumerate(measures):
        per_row = max(1, size // max(1, n))
        offset = 0
        while offset < n:
            if full:
                shards.append([])
                rows = nbytes = 0
                full = False
            length = min(n - offset, max_rows - rows, max(1, (max_bytes - nbytes) // per_row))
            shards[-1].append((part, offset, length))
            rows += length
            nbytes += length * per_row
            offset += length
            full = rows >= max_rows or nbytes >= max_bytes
    return shards


class MeasureTask:
    """Rows and in-memory bytes of the published columns of each part: what shard sizes are planned from."""

    def __init__(self, parts: Sequence[str], columns: Sequence[str]):
        self.parts, self.columns = list(parts), list(columns)

    def __call__(self, batches):
        for i in task_indexes(batches):
            table = read_part(self.parts[i], columns=self.columns)
            yield status(i, rows=table.num_rows, nbytes=table.nbytes)


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
                    chunk = read_part(self.parts[p], columns=self.columns).slice(offset, length)
                    if writer is None:
                        writer = pq.ParquetWriter(path, chunk.schema, compression="zstd", compression_level=3)
                    writer.write_table(chunk, row_group_size=self.row_group_rows)
                    rows += chunk.num_rows
                writer.close()

            replace_file(Path(self.paths[k]), write)
            yield status(k, rows=rows)


class HistoryTask:
    """Task i: the stage's state (Stage.history) of part i's rows, the rows about to be published, written as
    <folder>/part-<i>.parquet."""

    def __init__(self, stage: Stage, parts: Sequence[str], folder: str):
        self.stage, self.parts, self.folder = stage, list(parts), folder

    def __call__(self, batches):
        stage = worker_stage(self.stage)
        for i in task_indexes(batches):
            write_history_part(Path(self.folder), i, len(self.parts), stage.history(read_part(self.parts[i])))
            yield status(i)


class HistorySketchTask:
    """Task j: band keys, payloads and ids of the published rows in history file j, as the rows of part
    `first + j` (named like the new rows' parts, so lookups by a rank's part bits find them). Their ranks come
    before every new row's, in the stored order (positions offsets[j]...), so a published row always wins. One file
    per task: no process holds the whole history."""

    def __init__(self, stage: Stage, files: Sequence[str], offsets: Sequence[int], first: int, width: int,
                 work: str, bits: int):
        self.stage, self.files, self.offsets, self.first = stage, list(files), list(offsets), first
        self.width, self.work, self.bits = width, Path(work), bits

    def __call__(self, batches):
        stage = worker_stage(self.stage)
        for j in task_indexes(batches):
            state = pq.read_table(self.files[j])
            part = self.first + j
            ranks = ((self.offsets[j] + np.arange(state.num_rows, dtype=np.int64)) << self.bits) | part
            name = f"part-{part:0{self.width}d}.parquet"
            keys = stage.history_keys(state)
            write_table(self.work / "keys" / name, pa.table({
                "rank": pa.array(ranks[keys.column("row").to_numpy()]), "band": keys.column("band").cast(pa.int32()),
                "key": pa.array(keys.column("key").to_numpy().view(np.int64))}))
            write_table(self.work / "published" / name, pa.table({"rank": ranks, "idk": flip_ids(state.column("id"))}))
            result = {"keys": keys.num_rows}
            payload = stage.history_payload(state)
            if payload is not None:
                values = np.ascontiguousarray(payload)
                write_table(self.work / "payloads" / name, pa.table({"rank": ranks, "payload": pack_rows(values)}))
                result["payload"] = {"dtype": values.dtype.str, "shape": list(payload.shape[1:])}
            yield status(j, **result)
