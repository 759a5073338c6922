"""The driver side of an engine whose workers run part_tasks (Spark, Beam): ingest, stages and shards as rounds of
one task per input piece, part or shard, with the polars engine's results. An engine supplies how a round of tasks
runs (`_run`) and how a dedupe stage's rows are grouped (`_group`, which writes each grouped row's verdict under
verdict/part=<i>); everything else is here, once."""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ValidationError

from transforms.engines import part_tasks
from transforms.engines.common import ORIGINAL_TEXT, IngestResult, Progress, StepResult
from transforms.engines.staging import PartWriter, read_part
from transforms.schema import DROP_SCHEMA, REJECT_SCHEMA, TWEET_SCHEMA
from transforms.stages.base import DedupeStage, Stage


class WorkerError(RuntimeError):
    """A task failed in a worker with an exception tweetmill cannot rebuild; the message is the worker's."""


class TaskEngine(ABC):
    name: str

    def __init__(self, part_rows: int, progress: Progress | None, options_model: type[BaseModel], options: dict):
        from transforms.config import ConfigError

        self.part_rows = part_rows
        self.progress = progress or (lambda n: None)
        try:
            self.options = options_model(**options)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "engine_options"
            raise ConfigError(f"invalid engine_options for {self.name}: {where}: {first['msg']}") from None

    def run_tasks(self, n: int, task: Callable, work: Path) -> list[dict]:
        """Tasks of other modules (the gate's slices of a large run) in this engine's workers."""
        return self._run(n, task, work)

    @abstractmethod
    def _run(self, n: int, task: Callable, work: Path) -> list[dict]:
        """Run `task` over task indexes 0..n-1, one task each; their status rows, in task order. `work`: a folder
        this round may use for its own bookkeeping."""

    @abstractmethod
    def _group(self, stage: DedupeStage, parts: list[str], work: Path, history: Sequence[Path]) -> Path:
        """The grouping of a dedupe stage: each grouped new row's verdict (node, rep_idk, size) under
        work/verdict/part=<i>, nodes being ranks in work/ranked/part=<i> (row, rank). `history`: the files of
        the stage's state of the published rows (_sketch_history)."""

    def _sketch_history(self, stage: DedupeStage, parts: list[str], history: Sequence[Path], sizes: Sequence[int],
                        work: Path, bits: int) -> list[dict]:
        """Band keys, payloads and ids of the published rows (`sizes`: rows per history file), one task per history
        file, as parts numbered after the new rows' (part_tasks.HistorySketchTask); their status rows."""
        if not history:
            return []
        offsets = np.cumsum([0, *sizes[:-1]]).tolist()
        task = part_tasks.HistorySketchTask(stage, [str(f) for f in history], offsets, len(parts),
                                            part_tasks.name_width(len(parts)), str(work), bits)
        return self._run(len(history), task, work)

    @staticmethod
    def _history_sizes(history: Sequence[Path]) -> list[int]:
        """Rows per history file, from the files' footers."""
        return [pq.read_metadata(f).num_rows for f in history]

    @staticmethod
    def _parts(statuses: list[dict]) -> list[Path]:
        """The tasks' parts in order; empty ones are removed unless every part is empty (one keeps the schema)."""
        files = [Path(f) for s in statuses for f in s["files"]]
        kept = [f for f in files if read_part(f).num_rows] or files[:1]
        for f in files:
            if f not in kept:
                f.unlink()
        return kept

    @staticmethod
    def _log(folder: Path, schema: pa.Schema) -> Path:
        """A log folder readable with pq.read_table even when no task wrote to it."""
        if not any(folder.glob("*.parquet")):
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(schema.empty_table(), folder / "part-00000.parquet")
        return folder

    # -- ingest -----------------------------------------------------------------------------------------------------
    def ingest(self, inputs: Sequence[str], options, out_dir: Path, keep_original: bool) -> IngestResult:
        from transforms.readers import expand_inputs
        from transforms.readers.pieces import plan_pieces, settle

        work = out_dir / "_work"
        pieces = plan_pieces(expand_inputs(list(inputs)), options)
        ranges = [i for i, p in enumerate(pieces) if p.mode == "lines"]
        if ranges:  # a first round counts the lines of each byte range: each then knows its first line's number
            counts: list[dict | None] = [None] * len(pieces)
            for i, count in zip(ranges, self._run(len(ranges), part_tasks.CountTask([pieces[i] for i in ranges],
                                                                                    options), work)):
                counts[i] = count
            pieces = settle(pieces, counts)
        task = part_tasks.IngestTask(pieces, options, str(out_dir), self.part_rows, keep_original)
        statuses = self._run(len(pieces), task, work)
        shutil.rmtree(work, ignore_errors=True)
        parts = self._parts(statuses)
        if not parts:  # no input file at all
            empty = TWEET_SCHEMA.empty_table()
            writer = PartWriter(out_dir / "parts", self.part_rows)
            writer.add(empty.append_column(ORIGINAL_TEXT, empty.column("text")) if keep_original else empty)
            parts = writer.close()
        tweets = sum(s["rows_out"] for s in statuses)
        rejected = sum(s["rejected"] for s in statuses)
        self.progress(tweets + rejected)
        return IngestResult(parts, tweets + rejected, rejected, self._log(out_dir / "rejects.parquet", REJECT_SCHEMA))

    # -- stages -----------------------------------------------------------------------------------------------------
    def run_stage(
        self, stage: Stage, parts: Sequence[Path], out_dir: Path, annotate_only: bool, history: Sequence[Path] = ()
    ) -> StepResult:
        """history: for a dedupe stage, the files of its persisted state of rows already published (they always
        win); read by the workers, one task per file."""
        parts = [str(p) for p in parts]
        work = out_dir / "_work"
        if isinstance(stage, DedupeStage):
            verdicts = self._group(stage, parts, work, list(history))
            task = part_tasks.DedupeTask(stage, parts, str(out_dir), self.part_rows, annotate_only, str(verdicts),
                                         str(work / "ranked"), str(work))
        else:
            task = part_tasks.BatchTask(stage, parts, str(out_dir), self.part_rows, annotate_only)
        statuses = self._run(len(parts), task, work)
        shutil.rmtree(work, ignore_errors=True)
        counts: Counter = Counter()
        for s in statuses:
            counts.update(s["reasons"])
        rows_in = sum(s["rows_in"] for s in statuses)
        self.progress(rows_in)
        drops = self._log(out_dir / "drops.parquet", DROP_SCHEMA)
        return StepResult(self._parts(statuses), rows_in, sum(s["rows_out"] for s in statuses), counts, drops)

    def write_history(self, stage: DedupeStage, parts: Sequence[Path], folder: Path) -> None:
        """The stage's state of the rows about to be published, one file per part in `folder`, each written by the
        task that computes it (MinHash signatures are sketched again there)."""
        shutil.rmtree(folder, ignore_errors=True)  # a retried publish leaves no file of its first try
        work = folder.parent / f"_work-{folder.name}"
        self._run(len(parts), part_tasks.HistoryTask(stage, [str(p) for p in parts], str(folder)), work)
        shutil.rmtree(work, ignore_errors=True)

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
        """The final parts as zstd Parquet shards of bounded size, in input order: one task per shard."""
        out_dir.mkdir(parents=True, exist_ok=True)
        work = out_dir.parent / f"_work-{out_dir.name}"
        parts = [str(p) for p in parts]
        selected = columns(read_part(parts[0]).schema)
        measured = self._run(len(parts), part_tasks.MeasureTask(parts, selected), work)
        plan = part_tasks.plan_shards([(m["rows"], m["nbytes"]) for m in measured], max_rows, max_bytes)
        paths = [out_dir / name(k) for k in range(len(plan))]
        if plan:
            self._run(len(plan), part_tasks.ShardTask(plan, parts, selected, [str(p) for p in paths], row_group_rows),
                      work)
        shutil.rmtree(work, ignore_errors=True)
        return paths
