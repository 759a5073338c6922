"""Engines translate stage definitions into work on one machine (polars) or a cluster (spark).
There is no Beam engine yet.

Each engine offers the same four operations over working parts (staging.py): ingest, run_stage, write_shards (and its name);
the pipeline (transforms/pipeline.py) calls them and never sees engine internals.
"""

from __future__ import annotations

from typing import Callable

from pydantic import BaseModel, ConfigDict, Field

from transforms.engines.staging import Compression


class PolarsOptions(BaseModel):
    """`engine_options` of a polars run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    staging_compression: Compression = None  # working parts on disk: none, "lz4" or "zstd" (see staging.py)
    threads: int | None = Field(None, gt=0)  # parts worked on at once; default: the machine's cores


def make_engine(name: str, *, part_rows: int, progress: Callable[[int], None] | None = None, **options):
    if name == "polars":
        from transforms.engines.polars import PolarsEngine

        return PolarsEngine(part_rows=part_rows, progress=progress, **PolarsOptions(**options).model_dump())
    if name == "spark":
        from transforms.engines.spark import SparkEngine

        return SparkEngine(part_rows=part_rows, progress=progress, **options)
    raise ValueError(f"unknown engine {name!r}; known: polars, spark")
