"""Engines translate stage definitions into work on one machine (polars) or a cluster (spark, beam).

Each engine offers the same operations over working parts (staging.py): ingest, run_stage, write_history (a dedupe
stage's state of the rows about to be published), write_shards (and its name); the pipeline (transforms/pipeline.py)
calls them and never sees engine internals.
"""

from __future__ import annotations

import os
from typing import Callable, Literal

from pydantic import BaseModel, ConfigDict, Field

from transforms.engines.staging import Compression


class PolarsOptions(BaseModel):
    """`engine_options` of a polars run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    staging_compression: Compression = None  # working parts on disk: none, "lz4" or "zstd" (see staging.py)
    threads: int | None = Field(None, gt=0)  # parts worked on at once; default: the machine's cores


class BeamOptions(BaseModel):
    """`engine_options` of a Beam run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runner: str = "FnApiRunner"  # or FlinkRunner, DataflowRunner, ... (their settings in pipeline_args)
    workers: int | None = Field(None, gt=0)  # local runner: workers at once; default: the machine's cores
    running_mode: Literal["multi_processing", "multi_threading", "in_memory"] = "multi_processing"
    partitions: int | None = Field(None, gt=0)  # shuffle partitions of a dedupe's grouping; default: from its size
    pipeline_args: tuple[str, ...] = ()  # any other Beam pipeline option, e.g. ("--flink_master=host:8081",)
    # The resource hint a GPU stage's tasks carry, in the runner's words, e.g. Dataflow's
    # "type:nvidia-l4;count:1;install-nvidia-driver"; other tasks carry none. None: no hint.
    accelerator: str | None = None

    @property
    def parallelism(self) -> int:
        return self.workers or os.cpu_count() or 1


def make_engine(name: str, *, part_rows: int, progress: Callable[[int], None] | None = None, **options):
    if name == "polars":
        from transforms.engines.polars import PolarsEngine

        return PolarsEngine(part_rows=part_rows, progress=progress, **PolarsOptions(**options).model_dump())
    if name == "spark":
        from transforms.engines.spark import SparkEngine

        return SparkEngine(part_rows=part_rows, progress=progress, **options)
    if name == "beam":
        from transforms.engines.beam import BeamEngine

        return BeamEngine(part_rows=part_rows, progress=progress, **options)
    raise ValueError(f"unknown engine {name!r}; known: polars, spark, beam")
