"""Connected components over shared keys, vectorized, band by band: the grouping step of every dedupe stage.

Nodes are numbered by rank (0 = most preferred row), so the smallest node of a component is its representative.
Union-find runs as array operations (hook the larger root under the smaller, then pointer-jump until flat), one band
at a time, so memory stays O(rows + one band's keys) instead of O(all candidate pairs).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

Verify = Callable[[np.ndarray, np.ndarray], np.ndarray]

# Buckets of up to this many nodes get all their pairs checked where edges are verified (see band_edges).
VERIFIED_PAIRS_UPTO = 8


def pairs_upto(verified: bool) -> int:
    """band_edges' bucket size for all pairs: stars (2) suffice where every edge holds."""
    return VERIFIED_PAIRS_UPTO if verified else 2


def _flatten(parent: np.ndarray) -> np.ndarray:
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return parent
        parent = grand


def union_edges(parent: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Merge the components of each edge (u[i], v[i]) into `parent` (a flat forest where roots are component minima)."""
    while len(u):
        pu, pv = parent[u], parent[v]
        differ = pu != pv
        if not differ.any():
            return parent
        u, v = u[differ], v[differ]
        lo = np.minimum(pu[differ], pv[differ])
        hi = np.maximum(pu[differ], pv[differ])
        np.minimum.at(parent, hi, lo)
        parent = _flatten(parent)
    return parent


def band_edges(nodes: np.ndarray, keys: np.ndarray, pairs_upto: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Candidate edges for one band: in a bucket of up to `pairs_upto` nodes every pair, in a larger one a star
    from the smallest node to every other.

    Stars suffice when every edge holds (exact keys). Where edges are verified, a star tests each member against
    the smallest only, so one stray member that sorts first hides every true pair of its bucket: small buckets then
    get all their pairs. Keys are sorted once (a plain argsort of uint64 is the fast path), and only keys held by two
    or more nodes go on to the grouping: in a real corpus almost every band key is unique."""
    order = np.argsort(keys)
    k = keys[order]
    same = k[1:] == k[:-1]
    shared = np.zeros(len(k), dtype=bool)
    shared[1:] = same
    shared[:-1] |= same
    k, n = k[shared], nodes[order[shared]]
    if not len(k):
        return n, n
    first = np.concatenate(([True], k[1:] != k[:-1]))
    starts = np.flatnonzero(first)
    sizes = np.diff(np.append(starts, len(k)))
    center = np.repeat(np.minimum.reduceat(n, starts), sizes)
    size = np.repeat(sizes, sizes)
    star = (n != center) & (size > pairs_upto)
    src, dst = [center[star]], [n[star]]
    bucket = np.cumsum(first)
    for d in range(1, min(pairs_upto, int(sizes.max()))):  # the node d places further on in the same small bucket
        pair = (bucket[:-d] == bucket[d:]) & (size[:-d] <= pairs_upto)
        a, b = n[:-d][pair], n[d:][pair]
        src.append(np.minimum(a, b))
        dst.append(np.maximum(a, b))
    return np.concatenate(src), np.concatenate(dst)


def find_representatives(
    rows: np.ndarray,
    bands: np.ndarray,
    keys: np.ndarray,
    rank: np.ndarray,
    verify: Verify | None = None,
) -> np.ndarray:
    """rep[r] = the min-rank row of r's component, where rows sharing a (band, key) are joined.

    rows/bands/keys are long arrays, one entry per (row, band key). rank[r] orders the rows (lower wins: earliest
    created_at, then smallest id) and is a permutation of 0..n-1. verify(a_rows, b_rows) filters candidate pairs.
    """
    rank = np.asarray(rank, dtype=np.int64)
    n = len(rank)
    row_of_node = np.empty(n, dtype=np.int64)
    row_of_node[rank] = np.arange(n, dtype=np.int64)
    parent = np.arange(n, dtype=np.int64)
    if n == 0 or len(rows) == 0:
        return row_of_node[parent[rank]]
    rows = np.asarray(rows, dtype=np.int64)
    bands = np.asarray(bands)
    keys = np.asarray(keys, dtype=np.uint64)
    for band in np.unique(bands):
        sel = np.flatnonzero(bands == band)  # nodes are looked up per band: no second array as long as `rows`
        u, v = band_edges(rank[rows[sel]], keys[sel], pairs_upto(verify is not None))
        if verify is not None and len(u):
            ok = np.asarray(verify(row_of_node[u], row_of_node[v]), dtype=bool)
            u, v = u[ok], v[ok]
        parent = union_edges(parent, u, v)
    return row_of_node[parent[rank]]


def tie_break(text: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The last preference, for rows that tie on (created_at, id): two copies of one tweet, say. The longer text
    first (an untruncated copy), then the smaller text hash: the row kept never depends on the order of the input.
    One uint64 per row, ascending = preferred. The hash is polars' (20x faster than transforms.hashing's; stable
    for the pinned polars version, and ranks are never stored, so it need not be stable across versions)."""
    length = np.minimum(pc.fill_null(pc.binary_length(text), 0).to_numpy(zero_copy_only=False), 0xFFFF)
    hashed = pl.Series(text).hash(seed=0).to_numpy()
    return ((0xFFFF - length).astype(np.uint64) << np.uint64(48)) | (hashed >> np.uint64(16))


def preference_keys(table: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, what preference_rank orders by: created_at in µs (int64 max when missing), the id as uint64, and
    the tie_break of its text. Every engine ranks by these."""
    created = pc.fill_null(table.column("created_at").cast(pa.int64()), np.iinfo(np.int64).max).to_numpy()
    return created, table.column("id").cast(pa.uint64()).to_numpy(), tie_break(table.column("text"))


def preference_rank(created_at_us: np.ndarray, ids: np.ndarray, ties: np.ndarray | None = None) -> np.ndarray:
    """Rank rows by (created_at, id, tie_break) ascending, nulls last, then by position: rank 0 is the row a
    duplicate group keeps.

    created_at_us: int64 microseconds with np.iinfo(np.int64).max for missing; ids: uint64 tweet ids; ties: the rows'
    tie_break (the engines always pass it).
    """
    order = np.lexsort((ids, created_at_us) if ties is None else (ties, ids, created_at_us))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    return rank
