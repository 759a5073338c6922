"""Engines translate stage definitions into work on one machine (polars) or a cluster (spark).
There is no Beam engine yet.

Each engine offers the same four operations over working parts (staging.py): ingest, run_stage, write_shards (and its name);
the pipeline (transforms/pipeline.py) calls them and never sees engine internals.
"""

from __future__ import annotations

from typing import Callable


def make_engine(name: str, *, part_rows: int, progress: Callable[[int], None] | None = None, **options):
    if name == "polars":
        from transforms.engines.polars import PolarsEngine

        unknown = sorted(set(options) - {"staging_compression", "threads"})
        if unknown:
            raise ValueError(f"unknown polars engine options {unknown}; known: staging_compression, threads")
        return PolarsEngine(part_rows=part_rows, progress=progress, **options)
    if name == "spark":
        from transforms.engines.spark import SparkEngine

        return SparkEngine(part_rows=part_rows, progress=progress, **options)
    raise ValueError(f"unknown engine {name!r}; known: polars, spark")
