"""The single-machine engine: runs stage definitions over working parts of bounded size, one part in memory at a time.

Translation only: what a stage does lives in transforms/stages/; how duplicates are grouped in transforms/dedupe.py.
Every step reads the previous step's parts and writes its own, so memory is bounded by the part size and each
finished step can be kept for a resumed run.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
from collections import Counter, deque
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from transforms.dedupe import find_representatives, preference_keys, preference_rank
from transforms.engines.common import (
    ORIGINAL_TEXT,
    WORKER_ENVIRONMENT,
    IngestResult,
    apply_batch_stage,
    batch_stage_output,
    candidate_keys,
    dedupe_columns,
    Progress,
    StepResult,
    drop_rows,
    first_reason,
    merge_columns,
    write_history_part,
)
from transforms.engines.key_groups import KeyGroups
from transforms.engines.part_tasks import run_here, run_task
from transforms.engines.staging import Compression, PartWriter, read_part, read_parts, write_part
from transforms.schema import DROP_SCHEMA, REJECT_SCHEMA, TWEET_SCHEMA
from transforms.stages.base import BatchStage, DedupeStage, Stage

def ordered_map(fn: Callable, items: Iterable, workers: int, pool: Executor | None = None) -> Iterator:
    """fn over items on `workers` threads (or in `pool`), results in input order, at most `workers` items in flight
    (so memory stays bounded by a few parts). Threads pay off for work that releases the GIL (polars, pyarrow,
    numpy); work that holds it goes to a process pool."""
    if workers <= 1 and pool is None:
        yield from map(fn, items)
        return
    with pool or ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class TableLog:
    """Appends rows of a fixed schema to one Parquet file, streaming."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path, self.schema = path, schema
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(path, schema, compression="zstd")
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        if table.num_rows:
            self._writer.write_table(table.select(self.schema.names).cast(self.schema))
            self.rows += table.num_rows

    def close(self) -> Path:
        self._writer.close()
        return self.path


class PolarsEngine:
    name = "polars"

    def __init__(self, part_rows: int = 262_144, progress: Progress | None = None,
                 staging_compression: Compression = None, threads: int | None = None):
        self.part_rows, self.staging_compression = part_rows, staging_compression
        self.threads = max(1, threads or os.cpu_count() or 1)  # parts worked on at once (threads or processes)
        self.progress = progress or (lambda n: None)

    def _writer(self, out_dir: Path) -> PartWriter:
        return PartWriter(out_dir / "parts", self.part_rows, self.staging_compression)

    # -- ingest ---------------------------------------------------------------------------------------------------
    def ingest(self, inputs: Sequence[str], options, out_dir: Path, keep_original: bool) -> IngestResult:
        from transforms.readers import read_inputs

        writer = self._writer(out_dir)
        rejects = TableLog(out_dir / "rejects.parquet", REJECT_SCHEMA)
        for batch in read_inputs(inputs, options):
            tweets = batch.tweets
            if keep_original:
                tweets = tweets.append_column(ORIGINAL_TEXT, tweets.column("text"))
            writer.add(tweets)
            rejects.add(batch.rejects)
            self.progress(batch.tweets.num_rows + batch.rejects.num_rows)
        if not writer.rows and not writer.parts and not writer._pending:
            empty = TWEET_SCHEMA.empty_table()
            writer.add(empty.append_column(ORIGINAL_TEXT, empty.column("text")) if keep_original else empty)
        return IngestResult(writer.close(), writer.rows + rejects.rows, rejects.rows, rejects.close())

    def run_tasks(self, n: int, task: Callable, work: Path | None = None) -> list[dict]:
        """part_tasks' tasks over indexes 0..n-1, in worker processes: the gate's slices of a large run (what the
        other engines run in their workers); their statuses, in task order."""
        if self.threads <= 1 or n <= 1:
            return run_here(n, task)
        with _worker_pool(None, min(self.threads, n)) as pool:
            return list(pool.map(run_task, [task] * n, range(n)))

    # -- stages ---------------------------------------------------------------------------------------------------
    def run_stage(
        self, stage: Stage, parts: Sequence[Path], out_dir: Path, annotate_only: bool, history: Sequence[Path] = ()
    ) -> StepResult:
        """history: for a dedupe stage, the files of its persisted state of rows already published (they always
        win), read one at a time; their keys join the new rows' as the new rows' do."""
        stage.ensure_setup()
        history = list(history)
        if isinstance(stage, DedupeStage) and stage.one_key_per_row:
            return self._run_key_groups(stage, parts, out_dir, annotate_only, history)
        if isinstance(stage, DedupeStage):
            return self._run_dedupe(stage, parts, out_dir, annotate_only, history)
        return self._run_batch(stage, parts, out_dir, annotate_only)

    def _finish_table(self, stage, table, reasons, dup_of, annotate_only, writer, drops, counts) -> None:
        if reasons.null_count < len(reasons):
            for item in pc.value_counts(reasons.drop_null()).to_pylist():
                counts[item["values"]] += item["counts"]
        if annotate_only:
            writer.add(first_reason(table, pc.binary_join_element_wise(stage.name, reasons, ":")))
        else:
            writer.add(table.filter(pc.is_null(reasons)))
            drops.add(drop_rows(table, stage.name, reasons, dup_of))
        self.progress(table.num_rows)

    def _run_batch(self, stage: BatchStage, parts, out_dir: Path, annotate_only: bool) -> StepResult:
        writer = self._writer(out_dir)
        drops = TableLog(out_dir / "drops.parquet", DROP_SCHEMA)
        counts: Counter = Counter()
        rows_in = 0
        if stage.thread_safe or self.threads == 1 or len(parts) < 2:
            threads = self.threads if stage.thread_safe else 1
            results = ordered_map(lambda t: apply_batch_stage(stage, t), read_parts(parts), threads)
        else:  # its work holds the GIL (fastText's binding does): one process per core, each set up once
            pool = _worker_pool(stage, min(self.threads, len(parts)))
            added = ordered_map(_annotate_part, map(str, parts), self.threads, pool)
            results = ((merge_columns(read_part(p), columns), reasons) for p, (columns, reasons) in zip(parts, added))
        for table, reasons in results:
            rows_in += table.num_rows
            self._finish_table(stage, table, reasons, None, annotate_only, writer, drops, counts)
        out = writer.close()
        return StepResult(out, rows_in, writer.rows, counts, drops.close())

    def _keys_in_workers(self, stage: DedupeStage, parts: Sequence[Path]) -> bool:
        """Whether a dedupe stage's keys (and history state) are made in worker processes: where it asks for them
        (DedupeStage.keys_in_workers) and there are several cores and parts."""
        return stage.keys_in_workers and self.threads > 1 and len(parts) > 1

    def _run_dedupe(self, stage: DedupeStage, parts, out_dir: Path, annotate_only: bool, history) -> StepResult:
        # Published rows come first (rows 0..h-1, ranks 0..h-1): a new row never replaces one already published.
        key_rows, key_bands, key_values, created, ids, ties, payloads = [], [], [], [], [], [], []
        h = 0
        for state in map(pq.read_table, history):
            keys = stage.history_keys(state)
            key_rows.append(keys.column("row").to_numpy() + h)
            key_bands.append(keys.column("band").to_numpy())
            key_values.append(keys.column("key").to_numpy())
            ids.append(state.column("id").cast(pa.uint64()).to_numpy())
            payload = stage.history_payload(state)
            if payload is not None:
                payloads.append(payload)
            h += state.num_rows
        # Pass 1: keys and ordering data for every new row, part by part (in one worker process per core where the
        # stage's hashing holds the GIL).
        if not self._keys_in_workers(stage, parts):
            sketched = ordered_map(lambda t: _sketch_table(stage, t), read_parts(parts),
                                   self.threads if stage.thread_safe else 1)
        else:
            (out_dir / "_sketches").mkdir(parents=True, exist_ok=True)
            jobs = [(str(p), str(out_dir / "_sketches" / f"{i:05d}")) for i, p in enumerate(parts)]
            results = ordered_map(_sketch_part, jobs, self.threads, _worker_pool(stage, min(self.threads, len(parts))))
            sketched = (_spilled(spill, result) for (_, spill), result in zip(jobs, results))
        pinned, annotations, row_offset = [], [], h
        for annotation, keys, pins, preference, payload in sketched:
            annotations.append(annotation)  # small (a hash per row at most): kept for pass 2
            if pins is not None:
                pinned.append(pins)
            key_rows.append(keys.column("row").to_numpy() + row_offset)
            key_bands.append(keys.column("band").to_numpy())
            key_values.append(keys.column("key").to_numpy())
            for column, values in zip((created, ids, ties), preference):
                column.append(values)
            if payload is not None:
                payloads.append(payload)
            row_offset += len(preference[0])
        all_ids = np.concatenate(ids) if ids else np.zeros(0, np.uint64)
        new_rank = preference_rank(np.concatenate(created) if created else np.zeros(0, np.int64), all_ids[h:],
                                   np.concatenate(ties) if ties else np.zeros(0, np.uint64))
        rank = np.concatenate([np.arange(h, dtype=np.int64), new_rank + h])
        verify = _pair_check(stage, np.concatenate(payloads)) if payloads else None
        rep = find_representatives(
            np.concatenate(key_rows) if key_rows else np.zeros(0, np.int64),
            np.concatenate(key_bands) if key_bands else np.zeros(0, np.int32),
            np.concatenate(key_values) if key_values else np.zeros(0, np.uint64),
            rank,
            verify,
        )
        del key_rows, key_bands, key_values, created, ties, payloads, verify  # the payloads go with verify
        shutil.rmtree(out_dir / "_sketches", ignore_errors=True)
        cluster_size = np.bincount(rep, minlength=len(rep))[rep] if len(rep) else np.zeros(0, np.int64)

        # Pass 2: attach dup_of / cluster size, apply the keep rule.
        writer = self._writer(out_dir)
        drops = TableLog(out_dir / "drops.parquet", DROP_SCHEMA)
        counts: Counter = Counter()
        row_offset = h
        for i, table in enumerate(read_parts(parts)):
            n = table.num_rows
            table = merge_columns(table, annotations[i])
            r = rep[row_offset : row_offset + n]
            is_dup = pa.array(r != np.arange(row_offset, row_offset + n))
            dup_of = pc.if_else(is_dup, pa.array(all_ids[r]).cast(pa.string()), pa.scalar(None, pa.string()))
            sizes = pa.array(cluster_size[row_offset : row_offset + n].astype(np.int64))
            table, reasons = dedupe_columns(stage, table, dup_of, sizes, pinned[i] if pinned else None)
            self._finish_table(stage, table, reasons, table.column(stage.dup_of_column), annotate_only, writer, drops, counts)
            row_offset += n
        out = writer.close()
        return StepResult(out, row_offset - h, writer.rows, counts, drops.close())

    def _run_key_groups(self, stage: DedupeStage, parts, out_dir: Path, annotate_only: bool, history) -> StepResult:
        """_run_dedupe for exact-key stages, in memory that does not grow with the input (see key_groups.py)."""
        h = sum(pq.read_metadata(f).num_rows for f in history)
        sizes = [read_part(p).num_rows for p in parts]
        starts = np.cumsum([h] + sizes)  # each part's first global row
        groups = KeyGroups(out_dir / "groups", int(starts[-1]), self.part_rows)
        threads = self.threads if stage.thread_safe else 1
        first = 0
        for state in map(pq.read_table, history):  # spilled by bucket like the new rows' keys, one file at a time
            keys = stage.history_keys(state)
            ids = state.column("id").cast(pa.uint64()).to_numpy()
            rows = keys.column("row").to_numpy()
            groups.add(keys.column("key").to_numpy(), rows + first, None, ids[rows], published=True)
            first += state.num_rows

        def sketch(table: pa.Table):
            columns = stage.annotate(table)
            table = merge_columns(table, columns)
            keys, _ = candidate_keys(stage, table)
            rows = keys.column("row").to_numpy()
            created, ids, ties = preference_keys(table)
            return columns, keys.column("key").to_numpy(), rows, created[rows], ids[rows], ties[rows]

        # Pass 1: each part's keys, spilled by bucket; its own columns kept beside it for pass 2.
        annotated = [out_dir / "groups" / f"columns-{i:05d}.arrow" for i in range(len(parts))]
        for i, (columns, keys, rows, created, ids, ties) in enumerate(ordered_map(sketch, read_parts(parts), threads)):
            write_part(columns, annotated[i])
            groups.add(keys, rows + starts[i], created, ids, ties)
        groups.solve()

        def judge(i: int):
            table = merge_columns(read_part(parts[i]), read_part(annotated[i]))
            is_dup, rep_id, size = groups.verdict(int(starts[i]), table.num_rows,
                                                  table.column("id").cast(pa.uint64()).to_numpy())
            dup_of = pc.if_else(pa.array(is_dup), pa.array(rep_id).cast(pa.string()), pa.scalar(None, pa.string()))
            return dedupe_columns(stage, table, dup_of, pa.array(size), stage.pinned(table))

        # Pass 2: each row's verdict, part by part.
        writer = self._writer(out_dir)
        drops = TableLog(out_dir / "drops.parquet", DROP_SCHEMA)
        counts: Counter = Counter()
        for table, reasons in ordered_map(judge, range(len(parts)), threads):
            self._finish_table(stage, table, reasons, table.column(stage.dup_of_column), annotate_only, writer, drops, counts)
        groups.close()
        out = writer.close()
        return StepResult(out, sum(sizes), writer.rows, counts, drops.close())

    def write_history(self, stage: DedupeStage, parts: Sequence[Path], folder: Path) -> None:
        """The stage's state of the rows about to be published, one file per part in `folder` (on the engine's
        threads where the stage allows): the state of every row never sits in memory at once."""
        stage.ensure_setup()
        shutil.rmtree(folder, ignore_errors=True)  # a retried publish leaves no file of its first try
        if self._keys_in_workers(stage, parts):  # each worker writes its parts' files
            jobs = [(str(p), str(folder), i, len(parts)) for i, p in enumerate(parts)]
            deque(ordered_map(_history_part, jobs, self.threads, _worker_pool(stage, min(self.threads, len(parts)))),
                  maxlen=0)
            return
        states = ordered_map(stage.history, read_parts(parts), self.threads if stage.thread_safe else 1)
        for i, state in enumerate(states):
            write_history_part(folder, i, len(parts), state)

    # -- output ---------------------------------------------------------------------------------------------------
    def write_shards(
        self,
        parts: Sequence[Path],
        out_dir: Path,
        name: Callable[[int], str],
        columns: Callable[[pa.Schema], list[str]],
        max_rows: int,
        max_bytes: int,
        row_group_rows: int,
    ) -> list[Path]:
        """Rewrite the final parts as zstd Parquet shards of bounded size, in input order."""
        out_dir.mkdir(parents=True, exist_ok=True)
        shards: list[Path] = []
        writer, rows, nbytes = None, 0, 0
        for table in read_parts(parts):
            table = table.select(columns(table.schema))
            offset = 0
            while offset < table.num_rows:
                if writer is None:
                    path = out_dir / name(len(shards))
                    writer = pq.ParquetWriter(path, table.schema, compression="zstd", compression_level=3)
                    shards.append(path)
                    rows, nbytes = 0, 0
                per_row = max(1, table.nbytes // max(1, table.num_rows))
                room = min(max_rows - rows, max(1, (max_bytes - nbytes) // per_row))
                chunk = table.slice(offset, room)
                writer.write_table(chunk, row_group_size=row_group_rows)
                rows += chunk.num_rows
                nbytes += chunk.num_rows * per_row
                offset += chunk.num_rows
                if rows >= max_rows or nbytes >= max_bytes:
                    writer.close()
                    writer = None
        if writer is not None:
            writer.close()
        return shards


def _pair_check(stage: DedupeStage, payloads: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The stage's verification of candidate pairs (row indexes a[i], b[i]) over every row's payload."""
    return lambda a, b: stage.verify(payloads[a], payloads[b])


# Worker processes start from a clean server process, never by forking this one (it runs threads: Prefect's, polars').
_PROCESSES = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                                         else "spawn")

# A worker process's stage (ProcessPoolExecutor initializer): set up once, used for every part it is given.
_worker_stage: Stage | None = None


def _worker_pool(stage: Stage | None, workers: int) -> ProcessPoolExecutor:
    """`workers` processes with `stage` (if any) set up, all started before this returns.

    They start without the caller's __main__: multiprocessing would re-run a script's top level in each of them
    (a script that calls the pipeline without an `if __name__ == "__main__"` guard would run again in every worker,
    side effects included). They need nothing from it: the stage and the worker functions live in transforms.
    """
    main = sys.modules["__main__"]
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        pool = ProcessPoolExecutor(workers, mp_context=_PROCESSES, initializer=_start_worker,
                                   initargs=(stage, WORKER_ENVIRONMENT | dict(os.environ)))
        for _ in range(10):  # a submit starts a worker while none is idle (CPython 3.9+): a round or two starts all
            if len(getattr(pool, "_processes", None) or {}) >= workers:
                break
            for started in [pool.submit(os.getpid) for _ in range(workers)]:
                started.result()
    finally:
        main.__dict__.update(saved)
        if "__spec__" not in saved:
            del main.__spec__
    return pool


def _start_worker(stage: Stage, environment: dict[str, str]) -> None:
    """The stage, and the caller's environment as it is now (a stage's key may have been set after the process that
    starts workers began). Its setup runs with the first part, so a failure reaches the caller as itself."""
    global _worker_stage
    os.environ.clear()
    os.environ.update(environment)
    _worker_stage = stage


def _sketch_table(stage: DedupeStage, table: pa.Table) -> tuple:
    """Pass 1 of a grouped dedupe for one part: the stage's columns, its candidate keys and pinned rows, the rows'
    preference keys (created_at, id, tie break) and the payload pairs are verified with."""
    annotation = stage.annotate(table)
    table = merge_columns(table, annotation)
    keys, pins = candidate_keys(stage, table)
    return annotation, keys, pins, preference_keys(table), stage.payload(table)


def _sketch_part(job: tuple[str, str]) -> tuple:
    """In a worker: _sketch_table of one part (read from disk here). The band keys and payloads (~170 MB a part of
    262k tweets for MinHash) go back as files at `spill`.keys / `spill`.npy, which the caller maps into memory: through
    the pool's pipe, pickled, they cost the caller more time than the worker's hashing saved."""
    part, spill = job
    _worker_stage.ensure_setup()
    annotation, keys, pins, preference, payload = _sketch_table(_worker_stage, read_part(Path(part)))
    write_part(keys, Path(f"{spill}.keys"))
    if payload is not None:
        np.save(f"{spill}.npy", payload, allow_pickle=False)
    return annotation, pins, preference, payload is not None


def _spilled(spill: str, result: tuple) -> tuple:
    """_sketch_part's result as _sketch_table gives it, its keys and payload mapped from the files it wrote."""
    annotation, pins, preference, has_payload = result
    payload = np.load(f"{spill}.npy", mmap_mode="r", allow_pickle=False) if has_payload else None
    return annotation, read_part(Path(f"{spill}.keys")), pins, preference, payload


def _history_part(job: tuple[str, str, int, int]) -> None:
    """In a worker: the stage's state of one part's rows, written as that part's history file."""
    part, folder, index, parts = job
    _worker_stage.ensure_setup()
    write_history_part(Path(folder), index, parts, _worker_stage.history(read_part(Path(part))))


def _annotate_part(part: str) -> tuple[pa.Table, pa.Array]:
    """In a worker: the stage's columns and drop reasons for one part. Only these travel back; the parent reads the
    part from disk itself (memory-mapped) and merges them in."""
    _worker_stage.ensure_setup()
    return batch_stage_output(_worker_stage, read_part(Path(part)))
