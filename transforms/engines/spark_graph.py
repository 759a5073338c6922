"""Duplicate groups as Spark jobs: the grouping step of every dedupe stage, distributed, no extra jars.

Nodes are labelled by rank (the engine numbers rows in preference order first, so the smallest label of a group is
the row it keeps), and the result equals transforms.dedupe.find_representatives on the same input (a test holds
them to it):
- star edges: the band keys are hash-partitioned by (band, key), and each partition links every member of a bucket
  to the bucket's smallest label with transforms.dedupe's own numpy star builder (measured 2.3x faster than a
  Spark window over the same 20M keys), every pair of a small bucket where edges are verified; a stage's verify()
  may then drop candidate edges;
- connected components by components.py's large-star and small-star kernels, one Spark partition at a time, until
  its star check (the same kernel the Beam engine runs) finds the edges disjoint stars, each around its component's
  smallest label;
- that smallest label is the representative, and each component's size is counted.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from transforms.dedupe import pairs_upto
from transforms.engines import components, part_tasks

Verify = Callable[[DataFrame], DataFrame]  # candidate edges (src, dst) -> the edges that really are duplicates


def star_edges(keys: DataFrame, partitions: int, verified: bool = False) -> DataFrame:
    """keys (rank, band, key) -> edges (src, dst): each bucket's members to its smallest rank (and, where edges are
    verified, every pair of a small bucket: transforms.dedupe.band_edges)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    schema = from_arrow_schema(part_tasks.EDGE_SCHEMA)
    build = functools.partial(part_tasks.bucket_stars, pairs_upto=pairs_upto(verified))
    return keys.repartition(partitions, "band", "key").mapInArrow(build, schema).distinct()


EDGES = pa.schema([pa.field("a", pa.int64(), False), pa.field("b", pa.int64(), False)])
CHECKED = pa.schema([*EDGES, pa.field("star", pa.bool_(), False)])


def _kernel(step: Callable, ends: tuple[str, str]):
    """A components.py kernel over a Spark partition's Arrow batches: (u, v) columns `ends` in, edges (a, b) out."""

    def run(batches):
        batches = list(batches)
        if batches:
            table = pa.Table.from_batches(batches)
            a, b = step(*(table.column(c).to_numpy() for c in ends))
            yield pa.RecordBatch.from_arrays([pa.array(a, pa.int64()), pa.array(b, pa.int64())], schema=EDGES)
    return run


def _check_stars(batches):
    """components.distinct_stars over a partition by node: rows (a, b) are edges of its nodes b, rows (a, null) the
    centres a that are its nodes -> its distinct edges, each with the partition's verdict (are its nodes leaves)."""
    batches = list(batches)
    if not batches:
        return
    table = pa.Table.from_batches(batches)
    edge = table.column("b").is_valid().to_numpy(zero_copy_only=False)
    a = table.column("a").to_numpy()
    b = table.column("b").fill_null(0).to_numpy()
    a, b, star = components.distinct_stars(a[edge], b[edge], a[~edge])
    if len(a):
        yield pa.RecordBatch.from_arrays([pa.array(a), pa.array(b), pa.array(np.full(len(a), star))], schema=CHECKED)


def _stars(edges: DataFrame, partitions: int, path: Path) -> tuple[DataFrame, bool]:
    """Edges (a, b) -> the same edges made distinct, written to `path`, and whether they are disjoint stars, each
    around its component's smallest node: one shuffle by node (an edge goes where its b is, a centre where it is)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    tagged = edges.select(F.col("b").alias("node"), "a", "b").union(
        edges.select(F.col("a").alias("node"), "a", F.lit(None).cast("long").alias("b")))
    tagged.repartition(partitions, "node").mapInArrow(_check_stars, from_arrow_schema(CHECKED)).write.parquet(str(path))
    checked = edges.sparkSession.read.parquet(str(path))
    return checked.select("a", "b"), checked.where(~F.col("star")).isEmpty()


def _round(edges: DataFrame, partitions: int) -> DataFrame:
    """One large-star and one small-star step, each a shuffle by node and a components.py kernel per partition."""
    from pyspark.sql.pandas.types import from_arrow_schema

    schema = from_arrow_schema(EDGES)
    both = edges.select(F.col("a").alias("u"), F.col("b").alias("v")).union(
        edges.select(F.col("b").alias("u"), F.col("a").alias("v")))
    large = both.repartition(partitions, "u").mapInArrow(_kernel(components.large_star, ("u", "v")), schema)
    return large.repartition(partitions, "b").mapInArrow(_kernel(components.small_star, ("b", "a")), schema)


def connected_components(edges: DataFrame, work: Path, partitions: int) -> DataFrame:
    """edges (src, dst) -> (node, comp) for every node on an edge; comp is the smallest node of its component.

    Buckets' star edges already point at their smallest node, so exact dedupe (one key per row) needs no round.
    Every round's edges are written under `work`, so plans stay short however many rounds it takes."""
    canonical = edges.select(F.least("src", "dst").alias("a"), F.greatest("src", "dst").alias("b"))
    current, star = _stars(canonical, partitions, work / "cc-0")
    rounds = 0
    while not star:
        rounds += 1
        if rounds > components.MAX_ROUNDS:
            raise RuntimeError(f"connected components did not converge in {components.MAX_ROUNDS} rounds")
        current, star = _stars(_round(current, partitions), partitions, work / f"cc-{rounds}")
    centres = current.select(F.col("a").alias("node"), F.col("a").alias("comp")).distinct()
    return current.select(F.col("b").alias("node"), F.col("a").alias("comp")).union(centres)


def representatives(keys: DataFrame, work: Path, partitions: int, verify: Verify | None = None) -> DataFrame:
    """keys (rank, band, key) -> (node, rep, size) for every node in a group of two or more (others are alone):
    rep is the group's smallest rank, size its number of nodes."""
    edges = star_edges(keys, partitions, verified=verify is not None)
    if verify is not None:
        edges = verify(edges)
    members = connected_components(edges, work, partitions)
    size = F.count("*").over(Window.partitionBy("comp"))
    return members.select("node", F.col("comp").alias("rep"), size.alias("size"))
