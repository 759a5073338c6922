"""Duplicate groups of exact-key stages, found bucket by bucket on disk, so memory does not grow with the input.

For a stage whose rows each have one key and whose pairs need no verification (dedupe_exact), a duplicate group is
simply a key's rows: no component spans two keys. Rows are spread into buckets by the key's top bits, each bucket
(about one working part of rows) is sorted on its own, and each row's verdict is read back part by part. Memory is
that of one part and one bucket, whatever the number of rows; the general grouping (transforms/dedupe.py) holds a
few arrays per row instead.

The representative is the row that transforms/dedupe.py would pick: published rows first (in their order), then the
earliest created_at, the smallest id, the tie break (longer text, then text hash), the earliest position.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
import numpy as np
import pyarrow as pa

from transforms.engines.staging import read_part, write_part

EARLIEST = np.iinfo(np.int64).min  # the created_at of published rows: they always win


class KeyGroups:
    """Spill (key, preference, position) per part with `add`, then `solve`, then `verdict` for each part's rows."""

    def __init__(self, work: Path, expected_rows: int, bucket_rows: int):
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.bits = max(0, math.ceil(math.log2(max(1.0, expected_rows / bucket_rows))))
        self.runs: list[tuple[Path, np.ndarray]] = []  # spilled run, start of each bucket in it
        self.results: list[Path] = []

    def add(self, keys: np.ndarray, positions: np.ndarray, created: np.ndarray | None, ids: np.ndarray,
            ties: np.ndarray | None = None, published: bool = False) -> None:
        """One batch of keyed rows: keys uint64, positions int64 (global row numbers), created int64 µs (int64 max if
        unknown; None for published rows), ids uint64, ties uint64 (transforms/dedupe.py's tie_break; None for
        published rows)."""
        bucket = (keys >> np.uint64(64 - self.bits)).astype(np.int64) if self.bits else np.zeros(len(keys), np.int64)
        order = np.argsort(bucket, kind="stable")
        table = pa.table({
            "key": keys[order],
            "created": np.full(len(keys), EARLIEST) if published else created[order],
            "rank_id": np.zeros(len(keys), np.uint64) if published else ids[order],
            "tie": np.zeros(len(keys), np.uint64) if published else ties[order],
            "id": ids[order],
            "pos": positions[order],
        })
        path = self.work / f"run-{len(self.runs):05d}.arrow"
        write_part(table, path)
        self.runs.append((path, np.searchsorted(bucket[order], np.arange((1 << self.bits) + 1))))

    def solve(self) -> None:
        """Group each bucket; keep only rows in groups of two or more (a unique row's verdict is the default)."""
        for b in range(1 << self.bits):
            pieces = [read_part(path).slice(starts[b], starts[b + 1] - starts[b]) for path, starts in self.runs]
            pieces = [p for p in pieces if p.num_rows]
            if not pieces:
                continue
            t = pa.concat_tables(pieces)
            key, created = t.column("key").to_numpy(), t.column("created").to_numpy()
            rank_id, pos = t.column("rank_id").to_numpy(), t.column("pos").to_numpy()
            order = np.lexsort((pos, t.column("tie").to_numpy(), rank_id, created, key))
            key = key[order]
            starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
            size = np.diff(np.append(starts, len(key)))
            first = np.repeat(order[starts], size)
            grouped = np.repeat(size, size) > 1
            member = order[grouped]
            result = pa.table({
                "pos": pos[member],
                "rep_pos": pos[first[grouped]],
                "rep_id": t.column("id").to_numpy()[first[grouped]],
                "size": np.repeat(size, size)[grouped],
            }).sort_by("pos")
            path = self.work / f"groups-{b:05d}.arrow"
            write_part(result, path)
            self.results.append(path)

    def verdict(self, start: int, n: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For rows start..start+n-1: is_dup, the representative's id, and the group size."""
        is_dup = np.zeros(n, dtype=bool)
        rep_id = ids.copy()
        size = np.ones(n, dtype=np.int64)
        for path in self.results:
            groups = read_part(path)
            pos = groups.column("pos").to_numpy()
            lo, hi = np.searchsorted(pos, [start, start + n])
            if lo == hi:
                continue
            local = pos[lo:hi] - start
            rep_pos = groups.column("rep_pos").to_numpy()[lo:hi]
            is_dup[local] = rep_pos != pos[lo:hi]
            rep_id[local] = groups.column("rep_id").to_numpy()[lo:hi]
            size[local] = groups.column("size").to_numpy()[lo:hi]
        return is_dup, rep_id, size

    def close(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
