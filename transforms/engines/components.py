"""Connected components by large-star and small-star steps (Kiveris et al., "Connected Components in MapReduce and
Beyond", 2014): the distributed engines' grouping, as numpy kernels over one shuffle partition each.

Edges (a, b) have a < b and name nodes by rank, so a component's smallest node is the row its group keeps. A round is
a large-star step (shuffled by node, both ends) then a small-star step (shuffled by the larger end). Rounds repeat
until the edges are disjoint stars, each around its component's smallest node (O(log^2 n) rounds; none where the
buckets' stars are already disjoint, as in exact dedupe). An engine only moves the rows between the kernels: each
kernel needs every edge of its partition's nodes, and gives edges that may repeat across partitions (the engine makes
them distinct where it checks for stars).
"""

from __future__ import annotations

import numpy as np

MAX_ROUNDS = 100  # far above what any real graph needs (O(log^2 n)); a safeguard against a bug looping forever


def _by_node(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The edges sorted by u, and each edge's smallest v among its u's edges."""
    order = np.argsort(u, kind="stable")
    u, v = u[order], v[order]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]]) if len(u) else np.zeros(0, dtype=np.int64)
    smallest = np.repeat(np.minimum.reduceat(v, starts), np.diff(np.r_[starts, len(u)])) if len(u) else v
    return u, v, smallest


def canonical(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges in either direction -> (a, b) with a < b; self-loops go."""
    keep = src != dst
    return np.minimum(src, dst)[keep], np.maximum(src, dst)[keep]


def both_ways(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) for each edge from both of its ends: the large-star step's input, shuffled by u."""
    return np.concatenate([a, b]), np.concatenate([b, a])


def large_star(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every neighbour v of u (all of u's edges, from both ends) -> each larger neighbour linked to the smallest node
    of u's neighbourhood, u included."""
    u, v, smallest = _by_node(u, v)
    larger = v > u
    return np.minimum(smallest, u)[larger], v[larger]


def small_star(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every smaller neighbour v of u (edges (v, u), shuffled by u) -> u and those neighbours linked to the smallest of
    them."""
    u, v, smallest = _by_node(u, v)
    others = v != smallest
    first = np.r_[True, u[1:] != u[:-1]] if len(u) else np.zeros(0, dtype=bool)
    return np.concatenate([smallest[others], smallest[first]]), np.concatenate([v[others], u[first]])


def distinct_stars(a: np.ndarray, b: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """The edges of some nodes b (shuffled by b), and the centres a of edges elsewhere that are among those nodes ->
    the edges made distinct, and whether these nodes are star leaves: each has one smaller neighbour and no larger."""
    pairs = np.unique(np.stack([b, a], 1), axis=0) if len(a) else np.zeros((0, 2), dtype=np.int64)
    b, a = pairs[:, 0], pairs[:, 1]
    crowded = bool(len(b)) and bool((b[1:] == b[:-1]).any())
    return a, b, not crowded and not np.isin(centres, b).any()


def spread(nodes: np.ndarray, partitions: int) -> np.ndarray:
    """Each node's shuffle partition (a multiplicative hash, so runs of ranks spread out)."""
    mixed = nodes.view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return ((mixed >> np.uint64(20)) % np.uint64(partitions)).astype(np.int64)
