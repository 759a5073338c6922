"""Duplicate groups as Spark jobs: the grouping step of every dedupe stage, distributed, no extra jars.

Nodes are labelled by rank (the engine numbers rows in preference order first, so the smallest label of a group is
the row it keeps), and the result equals transforms.dedupe.find_representatives on the same input (a test holds
them to it):
- star edges: the band keys are hash-partitioned by (band, key), and each partition links every member of a bucket
  to the bucket's smallest label with transforms.dedupe's own numpy star builder (measured 2.3x faster than a
  Spark window over the same 20M keys), every pair of a small bucket where edges are verified; a stage's verify()
  may then drop candidate edges;
- connected components by components.py's large-star and small-star kernels, one Spark partition at a time, until
  the edges are disjoint stars, each around its component's smallest label;
- that smallest label is the representative, and each component's size is counted.

Every round's edges are written to Parquet under `work`, so plans stay short however many rounds it takes.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

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


def _kernel(step: Callable, ends: tuple[str, str]):
    """A components.py kernel over a Spark partition's Arrow batches: (u, v) columns `ends` in, edges (a, b) out."""

    def run(batches):
        batches = list(batches)
        if batches:
            table = pa.Table.from_batches(batches)
            a, b = step(*(table.column(c).to_numpy() for c in ends))
            yield pa.RecordBatch.from_arrays([pa.array(a, pa.int64()), pa.array(b, pa.int64())], names=["a", "b"])
    return run


def _round(edges: DataFrame, partitions: int) -> DataFrame:
    """One large-star and one small-star step, each a shuffle by node and a components.py kernel per partition."""
    from pyspark.sql.pandas.types import from_arrow_schema

    schema = from_arrow_schema(pa.schema([pa.field("a", pa.int64(), False), pa.field("b", pa.int64(), False)]))
    both = edges.select(F.col("a").alias("u"), F.col("b").alias("v")).union(
        edges.select(F.col("b").alias("u"), F.col("a").alias("v")))
    large = both.repartition(partitions, "u").mapInArrow(_kernel(components.large_star, ("u", "v")), schema)
    small = large.repartition(partitions, "b").mapInArrow(_kernel(components.small_star, ("b", "a")), schema)
    return small.distinct()


def _is_star_forest(edges: DataFrame) -> bool:
    """Every node has at most one smaller neighbour, and no node that has one also has larger ones: then each
    component is one star around its smallest node."""
    crowded = edges.groupBy("b").count().where(F.col("count") > 1).select("b")
    centres = edges.select(F.col("a").alias("b")).join(edges.select("b"), "b", "left_semi")
    return crowded.union(centres).isEmpty()


def _materialize(df: DataFrame, path: Path) -> DataFrame:
    df.write.parquet(str(path))
    return df.sparkSession.read.parquet(str(path))


def connected_components(edges: DataFrame, work: Path, partitions: int) -> DataFrame:
    """edges (src, dst) -> (node, comp) for every node on an edge; comp is the smallest node of its component.

    Buckets' star edges already point at their smallest node, so exact dedupe (one key per row) needs no round."""
    current = _materialize(
        edges.select(F.least("src", "dst").alias("a"), F.greatest("src", "dst").alias("b")).distinct(), work / "cc-0"
    )
    rounds = 0
    while not _is_star_forest(current):
        rounds += 1
        if rounds > components.MAX_ROUNDS:
            raise RuntimeError(f"connected components did not converge in {components.MAX_ROUNDS} rounds")
        current = _materialize(_round(current, partitions), work / f"cc-{rounds}")
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
