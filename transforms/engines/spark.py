"""The Spark engine: the same stage definitions as the polars engine, run as Spark jobs, with the same results.

Translation only. Every step is a job of one task per input file or working part (spark_tasks.py: the Python side,
run through mapInArrow), so parts keep input order and each row's (part, position) is its place in that order,
exactly as in the polars engine; Spark writes the rows. Dedupe stages group rows with Spark shuffles
(spark_graph.py): keys exploded per row, star edges per bucket, verification of candidate pairs, connected
components by large-star/small-star joins, then the verdict joined back part by part. Published shards are written
by one task each, in order, with the polars engine's writer settings.

Engine options (config `engine_options`): see spark_session.SparkOptions; usually just {"master": ...}.
Working folders must be visible to the driver and every executor (local disk for local[N] and a standalone cluster
on this host; a shared mount otherwise).
"""

from __future__ import annotations

import contextlib
import importlib
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from transforms.engines import spark_graph, spark_tasks
from transforms.engines.common import ORIGINAL_TEXT, IngestResult, Progress, StepResult
from transforms.engines.spark_session import SparkOptions, session
from transforms.schema import DROP_SCHEMA, REJECT_SCHEMA, TWEET_SCHEMA
from transforms.stages.base import DedupeStage, Stage

_SPARK_PART = re.compile(r"part-(\d+)-.*?c(\d+)(?:\.[^.]+)*\.parquet$")


def output_schema(schema: pa.Schema, fields: Sequence[pa.Field], annotate_only: bool) -> pa.Schema:
    """The schema merge_columns (and first_reason, in annotate mode) give a part: replaced in place, new appended."""
    added = [pa.field(f.name, f.type) for f in fields]
    if annotate_only:
        added.append(pa.field("drop_reason", pa.string()))
    for field in added:
        index = schema.get_field_index(field.name)
        schema = schema.set(index, field) if index >= 0 else schema.append(field)
    return schema


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


class WorkerError(RuntimeError):
    """A task failed in a Python worker with an exception tweetmill cannot rebuild; the message is the worker's."""


def _worker_exception(error: Exception) -> Exception | None:
    """The exception a Python worker raised, rebuilt from Spark's report of it, so InputError, MissingKey and the
    like reach the caller as themselves (the CLI maps them to exit codes); None for failures of other kinds."""
    from pyspark.errors.exceptions.captured import PythonException

    if not isinstance(error, PythonException):
        return None
    text = str(error)
    for qualified, message in reversed(re.findall(r"^([A-Za-z_][\w.]*): (.*)$", text, re.MULTILINE)):
        module, _, name = qualified.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module or "builtins"), name)
        except (ImportError, AttributeError, ValueError):
            continue
        if isinstance(cls, type) and issubclass(cls, Exception):
            try:
                return cls(message)
            except TypeError:  # an exception class with another constructor: keep the worker's words
                return WorkerError(f"{qualified}: {message}")
    return WorkerError(text.strip().splitlines()[-1] if text.strip() else "a Spark task failed")


@contextlib.contextmanager
def _worker_errors() -> Iterator[None]:
    try:
        yield
    except Exception as error:
        rebuilt = _worker_exception(error)
        if rebuilt is None:
            raise
        raise rebuilt from error


class SparkEngine:
    name = "spark"

    def __init__(self, part_rows: int = 262_144, progress: Progress | None = None, **options):
        from transforms.config import ConfigError

        self.part_rows = part_rows
        self.progress = progress or (lambda n: None)
        try:
            self.options = SparkOptions(**options)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "engine_options"
            raise ConfigError(f"invalid engine_options for spark: {where}: {first['msg']}") from None

    @property
    def spark(self):
        return session(self.options)

    # -- plumbing ---------------------------------------------------------------------------------------------------
    def _tasks(self, n: int, task: Callable, schema: pa.Schema):
        """A DataFrame of `task`'s output over task indexes 0..n-1, one Spark task (and output partition) each."""
        from pyspark.sql.pandas.types import from_arrow_schema

        spark_schema = from_arrow_schema(schema, prefer_timestamp_ntz=False)
        return self.spark.range(n, numPartitions=max(1, n)).mapInArrow(task, spark_schema)

    def _write_parts(self, df, out_dir: Path, schema: pa.Schema) -> list[Path]:
        """Write `df` with Spark, then name its files part-00000.parquet ... in partition order (= input order)."""
        staging, folder = out_dir / "_spark", out_dir / "parts"
        with _worker_errors():
            df.write.option("maxRecordsPerFile", self.part_rows).parquet(str(staging))
        found = sorted(
            (tuple(map(int, m.groups())), p) for p in staging.iterdir() if (m := _SPARK_PART.match(p.name))
        )
        folder.mkdir(parents=True, exist_ok=True)
        width = spark_tasks.name_width(len(found))
        parts = [folder / f"part-{k:0{width}d}.parquet" for k in range(len(found))]
        for (_, source), target in zip(found, parts):
            source.rename(target)
        if not parts:  # Spark wrote no file at all: keep the schema, as the polars engine does
            parts = [folder / "part-00000.parquet"]
            pq.write_table(schema.empty_table(), parts[0])
        shutil.rmtree(staging)
        return parts

    @staticmethod
    def _ensure_log(folder: Path, schema: pa.Schema) -> Path:
        """A log folder readable with pq.read_table even when no task wrote to it."""
        if not any(folder.glob("*.parquet")):
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(schema.empty_table(), folder / "part-00000.parquet")
        return folder

    # -- ingest -----------------------------------------------------------------------------------------------------
    def ingest(self, inputs: Sequence[str], options, out_dir: Path, keep_original: bool) -> IngestResult:
        from transforms.readers import expand_inputs

        files = expand_inputs(list(inputs))
        schema = TWEET_SCHEMA.append(pa.field(ORIGINAL_TEXT, pa.string())) if keep_original else TWEET_SCHEMA
        task = spark_tasks.IngestTask(files, options, str(out_dir), schema, keep_original)
        parts = self._write_parts(self._tasks(len(files), task, schema), out_dir, schema)
        stats = spark_tasks.read_stats(out_dir / "_tasks")
        shutil.rmtree(out_dir / "_tasks", ignore_errors=True)
        tweets = sum(s["rows_out"] for s in stats)
        rejected = sum(s["rejected"] for s in stats)
        self.progress(tweets + rejected)
        rejects = self._ensure_log(out_dir / "rejects.parquet", REJECT_SCHEMA)
        return IngestResult(parts, tweets + rejected, rejected, rejects)

    # -- stages -----------------------------------------------------------------------------------------------------
    def run_stage(self, stage: Stage, parts: Sequence[Path], out_dir: Path, annotate_only: bool) -> StepResult:
        parts = [str(p) for p in parts]
        schema = pq.read_schema(parts[0]).remove_metadata()
        if isinstance(stage, DedupeStage):
            fields = [*stage.writes, pa.field(stage.dup_of_column, pa.string()),
                      pa.field(stage.cluster_size_column, pa.int64())]
            schema = output_schema(schema, fields, annotate_only)
            verdicts = self._group(stage, parts, out_dir / "_work")
            task = spark_tasks.DedupeTask(stage, parts, str(out_dir), schema, annotate_only, str(verdicts))
        else:
            schema = output_schema(schema, stage.writes, annotate_only)
            task = spark_tasks.BatchTask(stage, parts, str(out_dir), schema, annotate_only)
        out = self._write_parts(self._tasks(len(parts), task, schema), out_dir, schema)
        stats = spark_tasks.read_stats(out_dir / "_tasks")
        shutil.rmtree(out_dir / "_tasks", ignore_errors=True)
        shutil.rmtree(out_dir / "_work", ignore_errors=True)
        counts: Counter = Counter()
        for s in stats:
            counts.update(s["reasons"])
        rows_in = sum(s["rows_in"] for s in stats)
        self.progress(rows_in)
        drops = self._ensure_log(out_dir / "drops.parquet", DROP_SCHEMA)
        return StepResult(out, rows_in, sum(s["rows_out"] for s in stats), counts, drops)

    def _group(self, stage: DedupeStage, parts: list[str], work: Path) -> Path:
        """Dedupe pass 1 and the grouping: writes each grouped row's verdict under work/verdict/part=<i>."""
        from pyspark.sql import functions as F
        from pyspark.sql.pandas.types import from_arrow_schema

        spark = self.spark
        sketch_task = spark_tasks.SketchTask(stage, parts, str(work), spark_tasks.SKETCH_SCHEMA, False)
        with _worker_errors():
            self._tasks(len(parts), sketch_task, spark_tasks.SKETCH_SCHEMA).write.parquet(str(work / "sketch"))
        described = [s["payload"] for s in spark_tasks.read_stats(work / "_sketch") if "payload" in s]
        sketch = spark.read.parquet(str(work / "sketch"))
        keys = sketch.select("row", "ts", "idk", F.explode("keys").alias("k")).select(
            "row", "ts", "idk", "k.band", "k.key"
        )
        verify = None
        if described:
            payloads = sketch.select("row", "payload")
            task = spark_tasks.VerifyTask(stage, described[0]["dtype"], described[0]["shape"])
            edge_schema = from_arrow_schema(spark_tasks.EDGE_SCHEMA)

            def verify(edges):
                pairs = edges.join(payloads.select(F.col("row").alias("src"), F.col("payload").alias("a")), "src")
                pairs = pairs.join(payloads.select(F.col("row").alias("dst"), F.col("payload").alias("b")), "dst")
                return pairs.select("src", "dst", "a", "b").mapInArrow(task, edge_schema)

        verdict = spark_graph.representatives(keys, sketch.select("row", "ts", "idk"), work, verify)
        verdict = verdict.select(
            "row",
            F.when(F.col("row") != F.col("rep_row"), F.col("rep_idk")).alias("rep_idk"),
            "size",
            F.shiftright("row", spark_tasks.POSITION_BITS).alias("part"),
        )
        with _worker_errors():
            verdict.write.partitionBy("part").parquet(str(work / "verdict"))
        return work / "verdict"

    # -- output -----------------------------------------------------------------------------------------------------
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
        """The final parts as zstd Parquet shards of bounded size, in input order: one Spark task per shard."""
        out_dir.mkdir(parents=True, exist_ok=True)
        parts = [str(p) for p in parts]
        selected = columns(pq.read_schema(parts[0]))
        measure = spark_tasks.MeasureTask(parts, selected)
        with _worker_errors():
            measured = sorted(self._tasks(len(parts), measure, spark_tasks.MEASURE_SCHEMA).collect())
        plan = plan_shards([(m["rows"], m["nbytes"]) for m in measured], max_rows, max_bytes)
        paths = [out_dir / name(k) for k in range(len(plan))]
        if plan:
            task = spark_tasks.ShardTask(plan, parts, selected, [str(p) for p in paths], row_group_rows)
            with _worker_errors():
                self._tasks(len(plan), task, spark_tasks.SHARD_SCHEMA).collect()
        return paths
