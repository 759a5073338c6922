"""The Spark engine: the same stage definitions as the polars engine, run as Spark jobs, with the same results.

Translation only. Every step is a job of one task per input piece or working part (part_tasks.py: the Python side,
run through mapInArrow; task_engine.py: the driver side it shares with the Beam engine), so parts keep input order
and each row's (part, position) is its place in that order, exactly as in the polars engine; tasks write their parts
with the shared part writer (staging.py) and return counts. Dedupe stages group rows with Spark shuffles: a sort
ranks all rows by preference (created_at, id, tie break, place), the band keys are shuffled by bucket into star
edges, candidate pairs are verified, connected components come from large-star/small-star steps (spark_graph.py),
and each row's verdict is joined back part by part. Published shards are written by one task each, in order, with
the polars engine's writer settings.

Engine options (config `engine_options`): see spark_session.SparkOptions; usually just {"master": ...}.
Working folders must be visible to the driver and every executor (local disk for local[N] and a standalone cluster
on this host; a shared mount otherwise).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import json
import re
from pathlib import Path
from typing import Callable, Iterator, Sequence

from transforms.engines import part_tasks, spark_graph
from transforms.engines.common import Progress
from transforms.engines.spark_session import SparkOptions, session
from transforms.engines.task_engine import TaskEngine, WorkerError
from transforms.stages.base import DedupeStage


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


class _OnItsGpu:
    """A GPU stage's task, run with the stage on the GPU Spark gave the task (its "gpu" resource), so that tasks
    sharing an executor's GPUs each use their own instead of all using the first. Where Spark gave it none (local
    mode, executors without GPUs) the stage keeps its configured device."""

    def __init__(self, task: Callable):
        self.task = task

    def __call__(self, batches):
        from pyspark import TaskContext

        gpus = TaskContext.get().resources().get("gpu")
        task = self.task
        if gpus is not None and gpus.addresses:
            task = copy.copy(task)
            task.stage = task.stage.on_gpu(gpus.addresses[0])
        return task(batches)


class SparkEngine(TaskEngine):
    name = "spark"

    def __init__(self, part_rows: int = 262_144, progress: Progress | None = None, **options):
        super().__init__(part_rows, progress, SparkOptions, options)

    @property
    def spark(self):
        return session(self.options)

    def _run(self, n: int, task: Callable, work: Path | None = None) -> list[dict]:
        """Run `task` over task indexes 0..n-1, one Spark task each; their status rows, in task order."""
        from pyspark.sql.pandas.types import from_arrow_schema

        schema = from_arrow_schema(part_tasks.STATUS_SCHEMA)
        profile = None
        if part_tasks.gpu_stage(task) is not None:
            task, profile = _OnItsGpu(task), self._gpu_profile()
        with _worker_errors():
            rows = self.spark.range(n, numPartitions=max(1, n)).mapInArrow(task, schema, profile=profile).collect()
        return [json.loads(r["status"]) for r in sorted(rows, key=lambda r: r["task"])]

    def _gpu_profile(self):
        """The resource profile of a GPU stage's tasks: one CPU and `task_gpus` GPUs each, so Spark runs as many at
        once on an executor as it has GPUs for. None where Spark cannot give tasks their own profile (other masters
        than standalone, YARN and Kubernetes, dynamic allocation: set spark.task.resource.gpu.amount there) or the
        executors have no GPUs."""
        from pyspark.resource import ResourceProfileBuilder, TaskResourceRequests

        sc = self.spark.sparkContext
        conf = sc.getConf()
        if (not sc.master.startswith(("spark://", "yarn", "k8s://"))
                or float(conf.get("spark.executor.resource.gpu.amount", "0")) <= 0
                or conf.get("spark.dynamicAllocation.enabled", "false").lower() == "true"):
            return None
        requests = TaskResourceRequests().cpus(int(conf.get("spark.task.cpus", "1")))
        return ResourceProfileBuilder().require(requests.resource("gpu", self.options.task_gpus)).build

    def _group(self, stage: DedupeStage, parts: list[str], work: Path, history: Sequence[Path]) -> Path:
        """The grouping of a dedupe stage; writes each grouped row's verdict under work/verdict/part=<i>.

        Nodes are ranks: published rows (history) come first in their stored order, so they always win; the new
        rows follow in preference order (created_at, id, tie break, place), numbered by a Spark sort. A rank's low
        bits hold the row's part (a published row's: its history file's, numbered after the new parts), so any rank
        can be routed to its part's files."""
        from pyspark.sql import functions as F
        from pyspark.sql.pandas.types import from_arrow_schema

        spark = self.spark
        sizes = self._history_sizes(history)
        h = sum(sizes)
        shuffle_partitions = int(spark.conf.get("spark.sql.shuffle.partitions"))
        bits = part_tasks.part_bits(len(parts) + len(history), h, shuffle_partitions, "shuffle_partitions")
        ordered = self._run(len(parts), part_tasks.OrderTask(parts, str(work / "nodes")))
        if not any(s["rows"] for s in ordered):  # no new rows, no groups (and Spark reads no schema from nothing)
            return work / "verdict"
        part = F.shiftright("row", part_tasks.POSITION_BITS)
        rank = F.shiftleft(F.monotonically_increasing_id() + h, bits).bitwiseOR(part)
        ranked = spark.read.parquet(str(work / "nodes")).orderBy("ts", "idk", "tie", "row")
        with _worker_errors():
            ranked.select("row", "idk", rank.alias("rank"), part.alias("part")).write.partitionBy("part").parquet(
                str(work / "ranked"))
        mask = (1 << bits) - 1
        sketched = self._run(len(parts), part_tasks.SketchTask(
            stage, parts, str(work), self.part_rows, False, str(work / "ranked")))
        sketched += self._sketch_history(stage, parts, history, sizes, work, bits)
        ids = spark.read.parquet(str(work / "ranked")).select("rank", "idk")
        if history:
            ids = ids.unionByName(spark.read.parquet(str(work / "published")))
        keys = spark.read.parquet(str(work / "keys"))
        partitions = part_tasks.key_partitions(sum(s["keys"] for s in sketched), shuffle_partitions)
        verify = None
        described = [s["payload"] for s in sketched if "payload" in s]
        if described:
            payloads = str(work / "payloads")
            attach = part_tasks.AttachTask(payloads, len(parts), mask)
            check = part_tasks.VerifyTask(stage, payloads, len(parts), mask, described[0]["dtype"],
                                           described[0]["shape"])
            fan = max(shuffle_partitions, len(parts))

            def verify(edges):
                """Each pair meets its payloads where they are stored (one file per part; a rank names its part),
                instead of every row's payload being shuffled to its pairs."""
                with_a = edges.repartition(fan, F.col("src").bitwiseAND(mask)).mapInArrow(
                    attach, from_arrow_schema(part_tasks.ATTACHED_SCHEMA))
                checked = with_a.repartition(fan, F.col("dst").bitwiseAND(mask))
                return checked.mapInArrow(check, from_arrow_schema(part_tasks.EDGE_SCHEMA))

        with _worker_errors():
            groups = spark_graph.representatives(keys, work, partitions, verify)
            verdict = groups.join(ids.select(F.col("rank").alias("rep"), F.col("idk").alias("rep_idk")), "rep").select(
                "node", F.when(F.col("node") != F.col("rep"), F.col("rep_idk")).alias("rep_idk"), "size",
                F.col("node").bitwiseAND(mask).alias("part"),
            )
            # Published rows are in the groups only to be matched; the verdicts are for the new rows.
            verdict.where(F.col("part") < len(parts)).write.partitionBy("part").parquet(str(work / "verdict"))
        return work / "verdict"
