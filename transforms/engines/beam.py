"""The Beam engine: the same stage definitions as the polars and Spark engines, run as Apache Beam pipelines, with
the same results.

Translation only, with the Spark engine's per-part tasks (part_tasks.py) and driver (task_engine.py): each round of
tasks is a pipeline whose elements are task indexes, one per input file, working part or shard; tasks write their
files themselves and leave a status each. Dedupe stages group rows with Beam shuffles, each element a whole Arrow
table (a hash or range partition), so workers work on arrays, never row by row:
- ranks: rows are range-partitioned by preference (created_at, id, tie break, place) on splitters sampled from every
  part, and each range is sorted; a rank is (range, place in the range), laid out as the Spark engine lays out its
  ranks, so the same sketch and verdict tasks read them;
- buckets: band keys are hash-partitioned by (band, key) and turned into star (and small-bucket pair) edges by
  transforms.dedupe's builder; where a stage verifies pairs, each edge meets its two payloads where they are stored;
- components: the edges meet in one worker, where transforms.dedupe's vectorized union-find groups them. That is
  this engine's limit of scale (~16 bytes per distinct edge in one worker); the Spark engine distributes it too.

Runners: the local FnApiRunner by default (no downloads; Beam's default DirectRunner first fetches a Prism binary),
in worker processes, threads or the caller's process; any other runner (Flink, Dataflow) through `pipeline_args`,
with working folders that every worker can see.
"""

from __future__ import annotations

import json
import logging
import pickle
import shlex
import shutil
import sys
import uuid
from pathlib import Path
from typing import Callable, Iterable

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from transforms.dedupe import pairs_upto, union_edges
from transforms.engines import BeamOptions, part_tasks
from transforms.engines.common import Progress
from transforms.engines.task_engine import TaskEngine, WorkerError
from transforms.stages.base import DedupeStage

ROWS_PER_RANGE = 4_000_000  # rows per range of the rank sort: bounds a worker's memory there (~40 bytes a row)
SAMPLES_PER_PART = 1_000  # rows each part offers as range splitters
NODE_COLUMNS = ["ts", "idk", "tie", "row"]  # preference order; `row` (part << 32 | position) is the last tie break

# Not a line per worker start and bundle in the run's log; a local runner's workers relay their warnings here too.
logging.getLogger("apache_beam").setLevel(logging.WARNING)
logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(logging.ERROR)
# It warns of several workers "in memory": the engine runs them as processes of its own (BeamEngine._runner).
logging.getLogger("apache_beam.runners.portability.fn_api_runner.fn_runner").setLevel(logging.ERROR)


# -- worker side ---------------------------------------------------------------------------------------------------
class _Guarded(beam.DoFn):
    """fn over each element; an exception is kept in `errors` (pickled) for the driver to raise as itself, on any
    runner (Beam reports a worker's exception as text, a RuntimeError, when workers are processes)."""

    def __init__(self, fn: Callable[..., Iterable | None], errors: str):
        self.fn, self.errors = fn, errors

    def process(self, element):
        try:
            yield from self.fn(element) or ()
        except Exception as error:  # every failure goes to the driver
            try:
                kept = pickle.dumps(error)
                pickle.loads(kept)
            except Exception:  # an exception that does not travel: its words do
                kept = pickle.dumps(WorkerError(f"{type(error).__module__}.{type(error).__qualname__}: {error}"))
            part_tasks.replace_file(Path(self.errors) / f"{uuid.uuid4().hex}.pickle", lambda p: p.write_bytes(kept))


class _RunTask:
    """Task index -> the part task's status rows, each written to `statuses` as <task>.json."""

    def __init__(self, task: Callable, statuses: str):
        self.task, self.statuses = task, statuses

    def __call__(self, i: int) -> None:
        for batch in self.task(iter([pa.record_batch([pa.array([i], pa.int64())], names=["id"])])):
            for row in batch.to_pylist():
                path = Path(self.statuses) / f"{row['task']:010d}.json"
                part_tasks.replace_file(path, lambda p, text=row["status"]: p.write_text(text))


def _lexsort(nodes: pa.Table) -> np.ndarray:
    return np.lexsort([nodes.column(c).to_numpy() for c in reversed(NODE_COLUMNS)])


class _Sample:
    """Part i's nodes -> up to SAMPLES_PER_PART of them, evenly spaced in preference order."""

    def __init__(self, nodes: list[str]):
        self.nodes = nodes

    def __call__(self, i: int):
        table = pq.read_table(self.nodes[i], columns=NODE_COLUMNS)
        if table.num_rows:
            order = _lexsort(table)
            yield table.take(order[np.linspace(0, len(order) - 1, min(len(order), SAMPLES_PER_PART)).astype(int)])


def _splitters(samples: list[pa.Table], ranges: int) -> pa.Table:
    """ranges - 1 rows that cut the sampled rows into `ranges` runs of equal length."""
    table = pa.concat_tables(samples)
    order = _lexsort(table)
    cuts = (np.arange(1, ranges) * len(order)) // ranges
    return table.take(order[cuts])


class _SplitByRange:
    """Part i's nodes -> (range, its rows of that range): range = how many splitters sort before or equal it."""

    def __init__(self, nodes: list[str]):
        self.nodes = nodes

    def __call__(self, i: int, splitters: pa.Table):
        table = pq.read_table(self.nodes[i], columns=NODE_COLUMNS)
        both = pa.concat_tables([splitters, table])
        is_splitter = np.zeros(both.num_rows, dtype=np.int8)
        is_splitter[: splitters.num_rows] = 1
        # a splitter sorts before the row equal to it (it is that row), so that row opens the next range
        order = np.lexsort([1 - is_splitter] + [both.column(c).to_numpy() for c in reversed(NODE_COLUMNS)])
        ranges = np.empty(both.num_rows, dtype=np.int64)
        ranges[order] = np.cumsum(is_splitter[order])
        ranges = ranges[splitters.num_rows:]
        for r in np.unique(ranges):
            yield int(r), table.filter(pa.array(ranges == r))


class _RankRange:
    """One range's rows, sorted -> ranks ((range << 33 | place in the range) + h) << bits | part, written under
    ranked/part=<p>/ as (row, idk, rank), the Spark engine's layout."""

    def __init__(self, ranked: str, published: int, bits: int):
        self.ranked, self.published, self.bits = ranked, published, bits

    def __call__(self, element) -> None:
        r, tables = element
        table = pa.concat_tables(list(tables))
        table = table.take(_lexsort(table))
        if table.num_rows >= 1 << part_tasks.RANGE_BITS:
            raise ValueError(f"a rank range holds {table.num_rows} rows; raise the engine's partitions")
        rows = table.column("row").to_numpy()
        rank = (((np.int64(r) << part_tasks.RANGE_BITS) | np.arange(len(rows), dtype=np.int64)) + self.published)
        rank <<= self.bits
        part = rows >> part_tasks.POSITION_BITS
        rank |= part
        for p in np.unique(part):
            chosen = part == p
            ranked = pa.table({"row": rows[chosen], "idk": table.column("idk").to_numpy()[chosen], "rank": rank[chosen]})
            part_tasks.write_table(Path(self.ranked) / f"part={int(p)}" / f"range-{r:05d}.parquet", ranked)


class _SplitKeys:
    """A keys file -> (partition, its keys): hash partitions of (band, key), so a bucket meets in one partition."""

    def __init__(self, partitions: int):
        self.partitions = partitions

    def __call__(self, path: str):
        keys = pq.read_table(path)
        mixed = keys.column("key").to_numpy().view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        mixed ^= keys.column("band").to_numpy().astype(np.uint64)
        target = (mixed >> np.uint64(20)) % np.uint64(self.partitions)
        for p in np.unique(target):
            yield int(p), keys.filter(pa.array(target == p))


def _bucket_edges(pairs_upto: int):
    """(partition, key tables) -> the edges of its buckets (part_tasks.bucket_stars), as tables."""

    def edges(element):
        _, tables = element
        batches = [b for t in tables for b in t.to_batches()]
        yield from (pa.Table.from_batches([b]) for b in part_tasks.bucket_stars(iter(batches), pairs_upto) if b.num_rows)
    return edges


def _by_part(end: str, mask: int):
    """Edges -> (the part of their `end` node, those edges)."""

    def split(table: pa.Table):
        ends = table.column(end).to_numpy() & mask
        for p in np.unique(ends):
            yield int(p), table.filter(pa.array(ends == p))
    return split


def _edge_task(task: Callable, distinct: bool):
    """(part, edge tables) -> the task's output (AttachTask, VerifyTask) as tables; the edges made distinct first
    where asked (a pair shares many bands: it is checked once)."""

    def run(element):
        _, tables = element
        table = pa.concat_tables(list(tables))
        if distinct:
            pairs = np.unique(np.stack([table.column("src").to_numpy(), table.column("dst").to_numpy()], 1), axis=0)
            table = pa.table({"src": pairs[:, 0], "dst": pairs[:, 1]}, schema=part_tasks.EDGE_SCHEMA)
        yield from (pa.Table.from_batches([b]) for b in task(iter(table.to_batches())) if b.num_rows)
    return run


class _Components:
    """Every edge, in one worker -> each grouped row's verdict (node, rep_idk, size) under verdict/part=<p>.

    Nodes are ranks, so numbering the distinct ones in order keeps preference order: union-find's roots (component
    minima) are the rows each group keeps, as in transforms.dedupe.find_representatives."""

    def __init__(self, work: str, mask: int):
        self.work, self.mask = Path(work), mask

    def __call__(self, element) -> None:
        _, tables = element
        edges = pa.concat_tables(list(tables))
        src, dst = edges.column("src").to_numpy(), edges.column("dst").to_numpy()
        nodes, index = np.unique(np.concatenate([src, dst]), return_inverse=True)
        parent = union_edges(np.arange(len(nodes), dtype=np.int64), index[: len(src)], index[len(src):])
        size = np.bincount(parent, minlength=len(nodes))[parent]
        rep = nodes[parent]
        rep_idk = np.zeros(len(nodes), dtype=np.int64)
        rep_part = rep & self.mask
        for p in np.unique(rep_part):
            chosen = rep_part == p
            ids = (pq.read_table(self.work / "published" / "history.parquet") if p == self.mask else
                   pq.read_table(self.work / "ranked" / f"part={int(p)}", columns=["rank", "idk"]))
            known = ids.column("rank").to_numpy()
            order = np.argsort(known)
            at = order[np.searchsorted(known, rep[chosen], sorter=order)]
            rep_idk[chosen] = ids.column("idk").to_numpy()[at]
        node_part = nodes & self.mask
        for p in np.unique(node_part):
            if p == self.mask:  # published rows are grouped only to be matched; verdicts are for the new rows
                continue
            chosen = node_part == p
            verdict = pa.table({
                "node": nodes[chosen],
                "rep_idk": pa.array(rep_idk[chosen], mask=(rep == nodes)[chosen]),
                "size": size[chosen].astype(np.int64),
            })
            part_tasks.write_table(self.work / "verdict" / f"part={int(p)}" / "verdict.parquet", verdict)


# -- driver side ---------------------------------------------------------------------------------------------------
class BeamEngine(TaskEngine):
    name = "beam"

    def __init__(self, part_rows: int = 262_144, progress: Progress | None = None, **options):
        super().__init__(part_rows, progress, BeamOptions, options)

    def _runner(self, work: Path):
        """The runner and its options. The local runner's worker processes are started as it starts them, but with
        their stderr (Beam's start-up log, hundreds of lines a run) in the step's work folder, which a failed step
        keeps: handed that environment, the runner must be told `in_memory`, the one mode in which it keeps it."""
        from apache_beam.options.pipeline_options import PipelineOptions

        options = self.options
        args, runner, mode = [f"--runner={options.runner}"], None, options.running_mode
        if options.runner in ("FnApiRunner", "DirectRunner"):  # the local runners
            workers = 1 if mode == "in_memory" else options.parallelism
            if options.runner == "FnApiRunner" and mode == "multi_processing":
                from apache_beam.runners.portability.fn_api_runner import FnApiRunner
                from apache_beam.transforms.environments import SubprocessSDKEnvironment

                log = shlex.quote(str(work / "beam-workers.log"))
                command = f"{shlex.quote(sys.executable)} -m apache_beam.runners.worker.sdk_worker_main 2>>{log}"
                runner = FnApiRunner(default_environment=SubprocessSDKEnvironment.from_command_string(command))
                mode = "in_memory"
            args += [f"--direct_num_workers={workers}", f"--direct_running_mode={mode}",
                     "--default_sdk_harness_log_level=ERROR"]
        return runner, PipelineOptions([*args, *options.pipeline_args])

    def _pipeline(self, work: Path, build: Callable[[beam.Pipeline, Callable], None]) -> None:
        """Build and run one pipeline; `build` wraps its functions with the guard it is given. The first exception a
        worker kept is raised here as itself."""
        errors = work / "errors"
        shutil.rmtree(errors, ignore_errors=True)
        errors.mkdir(parents=True)
        runner, options = self._runner(work)
        with beam.Pipeline(runner=runner, options=options) as p:
            build(p, lambda fn: beam.ParDo(_Guarded(fn, str(errors))))
        kept = sorted(errors.glob("*.pickle"))
        if kept:
            error = pickle.loads(kept[0].read_bytes())
            shutil.rmtree(errors, ignore_errors=True)
            raise error
        shutil.rmtree(errors, ignore_errors=True)

    def _run(self, n: int, task: Callable, work: Path) -> list[dict]:
        statuses = work / f"statuses-{uuid.uuid4().hex[:8]}"
        statuses.mkdir(parents=True)
        try:
            if n:
                self._pipeline(work, lambda p, guarded: (
                    p | beam.Create(range(n)) | beam.Reshuffle() | guarded(_RunTask(task, str(statuses)))))
            return [json.loads(f.read_text()) for f in sorted(statuses.glob("*.json"))]
        finally:
            shutil.rmtree(statuses, ignore_errors=True)

    def _group(self, stage: DedupeStage, parts: list[str], work: Path, history: pa.Table | None) -> Path:
        """Ranks (a range-partitioned sort), band keys, and then the buckets' edges, verified where the stage says so,
        grouped in one worker. Published rows rank first, in their stored order, with all-ones part bits."""
        h = history.num_rows if history is not None else 0
        ordered = self._run(len(parts), part_tasks.OrderTask(parts, str(work / "nodes")), work)
        rows = sum(s["rows"] for s in ordered)
        if not rows:
            return work / "verdict"
        ranges = self.options.partitions or max(self.options.parallelism, -(-rows // ROWS_PER_RANGE))
        bits = part_tasks.part_bits(len(parts), h, ranges, "partitions")
        mask = (1 << bits) - 1
        width = part_tasks.name_width(len(parts))
        nodes = [str(work / "nodes" / f"part-{i:0{width}d}.parquet") for i in range(len(parts))]
        counted = [i for i, s in enumerate(ordered) if s["rows"]]
        ranked = str(work / "ranked")

        def rank(p, guarded):
            indexes = p | "parts" >> beam.Create(counted) | beam.Reshuffle()
            samples = indexes | "sample" >> guarded(_Sample(nodes))
            splitters = samples | beam.combiners.ToList() | beam.Map(_splitters, ranges)
            split = _SplitByRange(nodes)
            (indexes | "split" >> beam.FlatMap(lambda i, cuts: split(i, cuts), beam.pvalue.AsSingleton(splitters))
             | "ranges" >> beam.GroupByKey() | "rank" >> guarded(_RankRange(ranked, h, bits)))

        self._pipeline(work, rank)
        sketched = self._run(len(parts), part_tasks.SketchTask(stage, parts, str(work), self.part_rows, False, ranked),
                             work)
        if h:
            sketched.append(part_tasks.sketch_history(stage, history, work, bits))
        keys = [str(f) for f in sorted((work / "keys").glob("*.parquet"))]
        partitions = self.options.partitions or part_tasks.key_partitions(sum(s["keys"] for s in sketched),
                                                                          self.options.parallelism)
        described = [s["payload"] for s in sketched if "payload" in s]

        def group(p, guarded):
            edges = (p | "keys" >> beam.Create(keys) | beam.Reshuffle() | "split" >> guarded(_SplitKeys(partitions))
                     | "buckets" >> beam.GroupByKey()
                     | "edges" >> guarded(_bucket_edges(pairs_upto(bool(described)))))
            if described:
                payloads = str(work / "payloads")
                attach = part_tasks.AttachTask(payloads, len(parts), mask)
                check = part_tasks.VerifyTask(stage, payloads, len(parts), mask, described[0]["dtype"],
                                              described[0]["shape"])
                edges = (edges | "by src" >> guarded(_by_part("src", mask)) | "src parts" >> beam.GroupByKey()
                         | "attach" >> guarded(_edge_task(attach, True))
                         | "by dst" >> guarded(_by_part("dst", mask)) | "dst parts" >> beam.GroupByKey()
                         | "verify" >> guarded(_edge_task(check, False)))
            (edges | "one worker" >> beam.Map(lambda t: (0, t)) | "all" >> beam.GroupByKey()
             | "components" >> guarded(_Components(str(work), mask)))

        self._pipeline(work, group)
        return work / "verdict"
