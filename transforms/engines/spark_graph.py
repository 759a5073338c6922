"""Duplicate groups as Spark jobs: the grouping step of every dedupe stage, distributed, no extra jars.

Same result as transforms.dedupe.find_representatives (a test holds them to it):
- star edges: in each (band, key) bucket every row is linked to the bucket's most preferred row, the one with the
  smallest (created_at, id, input position); a stage's verify() may then drop candidate edges;
- connected components by alternating large-star and small-star steps (Kiveris et al., "Connected Components in
  MapReduce and Beyond", 2014) over row labels, until no edge joins two nodes that both have other edges: then
  the edges are disjoint stars, one per component (O(log^2 n) rounds; none when they already are);
- each component's representative is its most preferred row, and its size is counted.

Every round's edges are written to Parquet under `work`, so plans stay short however many rounds it takes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

MAX_ROUNDS = 100  # far above what any real graph needs (O(log^2 n)); a safeguard against a bug looping forever

Verify = Callable[[DataFrame], DataFrame]  # candidate edges (src, dst) -> the edges that really are duplicates


def _preference() -> F.Column:
    return F.struct("ts", "idk", "row")  # compared field by field: the smallest struct is the preferred row


def star_edges(keys: DataFrame) -> DataFrame:
    """keys (row, ts, idk, band, key) -> edges (src, dst): every row to the preferred row of each bucket it is in."""
    center = F.min(_preference()).over(Window.partitionBy("band", "key")).getField("row")
    edges = keys.select(center.alias("src"), F.col("row").alias("dst"))
    return edges.where(F.col("src") != F.col("dst")).distinct()


def _large_star(edges: DataFrame) -> DataFrame:
    """Each node's larger neighbours are linked to the smallest node of its neighbourhood (itself included)."""
    both = edges.select(F.col("a").alias("u"), F.col("b").alias("v")).union(
        edges.select(F.col("b").alias("u"), F.col("a").alias("v"))
    )
    smallest = F.least(F.min("v").over(Window.partitionBy("u")), F.col("u"))
    linked = both.select("u", "v", smallest.alias("m")).where(F.col("v") > F.col("u"))
    return linked.select(F.col("m").alias("a"), F.col("v").alias("b")).distinct()


def _small_star(edges: DataFrame) -> DataFrame:
    """Each node and its smaller neighbours are linked to the smallest of those neighbours."""
    down = edges.select(F.col("b").alias("u"), F.col("a").alias("v"))
    down = down.select("u", "v", F.min("v").over(Window.partitionBy("u")).alias("m"))
    neighbours = down.where(F.col("v") != F.col("m")).select(F.col("m").alias("a"), F.col("v").alias("b"))
    return neighbours.union(down.select(F.col("m").alias("a"), F.col("u").alias("b"))).distinct()


def _hubs(edges: DataFrame) -> DataFrame:
    """Nodes on more than one edge."""
    ends = edges.select(F.col("a").alias("node")).union(edges.select(F.col("b").alias("node")))
    return ends.groupBy("node").count().where(F.col("count") > 1).select("node")


def _is_star_forest(edges: DataFrame, hubs: DataFrame) -> bool:
    """No edge joins two hubs: then every component is one hub and its leaves (or a single edge)."""
    both = edges.join(hubs.withColumnRenamed("node", "a"), "a", "left_semi")
    return both.join(hubs.withColumnRenamed("node", "b"), "b", "left_semi").isEmpty()


def _materialize(edges: DataFrame, path: Path) -> DataFrame:
    edges.write.parquet(str(path))
    return edges.sparkSession.read.parquet(str(path))


def connected_components(edges: DataFrame, work: Path) -> DataFrame:
    """edges (src, dst) -> (node, comp) for every node on an edge; comp labels its component.

    Star edges that are already disjoint stars (exact dedupe: one key per row) need no round at all."""
    current = _materialize(
        edges.select(F.least("src", "dst").alias("a"), F.greatest("src", "dst").alias("b")).distinct(), work / "cc-0"
    )
    rounds = 0
    while not _is_star_forest(current, _hubs(current)):
        rounds += 1
        if rounds > MAX_ROUNDS:
            raise RuntimeError(f"connected components did not converge in {MAX_ROUNDS} rounds")
        current = _materialize(_small_star(_large_star(current)), work / f"cc-{rounds}")
    # Each star's hub labels it; a lone edge is labelled by its smaller end.
    hubs = _hubs(current).select(F.col("node").alias("b"), F.lit(True).alias("b_is_hub"))
    labelled = current.join(hubs, "b", "left")
    comp = F.when(F.col("b_is_hub"), F.col("b")).otherwise(F.col("a"))
    labelled = labelled.select("a", "b", comp.alias("comp"))
    return (
        labelled.select(F.col("a").alias("node"), "comp")
        .union(labelled.select(F.col("b").alias("node"), "comp"))
        .distinct()
    )


def representatives(keys: DataFrame, nodes: DataFrame, work: Path, verify: Verify | None = None) -> DataFrame:
    """(row, rep_row, rep_idk, size) for every row in a group of two or more; rows not listed are their own group.

    keys: (row, ts, idk, band, key), one per band key; nodes: (row, ts, idk), one per row that has keys.
    """
    edges = star_edges(keys)
    if verify is not None:
        edges = verify(edges)
    members = connected_components(edges, work).join(nodes, F.col("node") == F.col("row")).drop("node")
    groups = members.groupBy("comp").agg(F.min(_preference()).alias("rep"), F.count("*").alias("size"))
    return members.join(groups, "comp").select(
        "row", F.col("rep.row").alias("rep_row"), F.col("rep.idk").alias("rep_idk"), "size"
    )
