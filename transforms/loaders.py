"""Readers for training jobs: a pinned version of a curated table through polars, pyarrow, duckdb, Spark or PyTorch.

Every reader takes the table path and a version (None: the latest). They read the version's shard list
(transforms.versions.shard_uris), so whatever the engine, a pinned version always yields the same rows.
The examples below run in tests/test_loaders.py, on a table whose version 0 holds 300 rows and version 1 500.

>>> polars_frame(table, version=0).select(pl.len()).collect().item()
300
>>> pyarrow_dataset(table, version=1).count_rows()
500
>>> duckdb_relation(table, version=1).aggregate("count(*)").fetchall()
[(500,)]
>>> rows = TweetDataset(table, version=1, columns=["id", "text"], rank=0, world_size=8)
>>> len(rows), sorted(next(iter(rows)))
(62, ['id', 'text'])
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from transforms import publish
from transforms.versions import shard_uris


def polars_frame(table: str | Path, version: int | None = None) -> pl.LazyFrame:
    """A lazy polars frame of the version: select and filter before `collect()` to read only what you need."""
    return pl.scan_delta(str(table), version=version)


def pyarrow_dataset(table: str | Path, version: int | None = None) -> ds.Dataset:
    """A pyarrow dataset of the version's shards (`to_batches()` streams record batches); a version without rows
    has no shards, and its dataset still has the table's columns."""
    uris = shard_uris(table, version)
    return ds.dataset(uris, format="parquet", schema=None if uris else _schema(table, version))


def duckdb_relation(table: str | Path, version: int | None = None, connection=None):
    """A DuckDB relation over the version's shards, e.g. `.filter("lang = 'en'").limit(10).fetchall()`."""
    import duckdb

    connection = connection if connection is not None else duckdb.connect()
    uris = shard_uris(table, version)
    if not uris:  # a version without rows has no shards, and DuckDB cannot read an empty list of files
        return connection.from_arrow(_schema(table, version).empty_table())
    return connection.read_parquet(uris)


def _schema(table: str | Path, version: int | None) -> pa.Schema:
    return pa.schema(publish.open_table(table, version).schema().to_arrow())


def spark_frame(spark, table: str | Path, version: int | None = None):
    """A Spark DataFrame of the version's shards, for a SparkSession you own (local or on a cluster that can
    reach the table's storage)."""
    return spark.read.parquet(*shard_uris(table, version))


@dataclass(frozen=True)
class Piece:
    """Rows [start, stop) of one row group: the unit a reader reads."""

    uri: str
    row_group: int
    start: int
    stop: int


def _open(uri: str) -> pa.NativeFile:
    """A shard by local path or by URI (s3://, gs://, ...: any filesystem pyarrow knows)."""
    fs, path = pafs.FileSystem.from_uri(uri) if "://" in uri else (pafs.LocalFileSystem(), uri)
    return fs.open_input_file(path)


def row_groups(uris: Sequence[str]) -> list[tuple[str, int, int]]:
    """(uri, row group, rows) for every row group of the shards, in shard order, from the footers only."""
    out = []
    for uri in uris:
        with _open(uri) as f:
            meta = pq.ParquetFile(f).metadata
        out += [(uri, i, meta.row_group(i).num_rows) for i in range(meta.num_row_groups)]
    return out


def split(groups: Sequence[tuple[str, int, int]], slot: int, slots: int) -> list[Piece]:
    """The pieces of slot `slot` of `slots`: the slots cut the concatenated rows into contiguous ranges that differ
    by at most one row, so every row belongs to exactly one slot, however few shards or row groups there are."""
    sizes = np.array([g[2] for g in groups], dtype=np.int64)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    total = int(ends[-1]) if len(ends) else 0
    lo, hi = total * slot // slots, total * (slot + 1) // slots
    touched = np.flatnonzero((starts < hi) & (ends > lo))
    return [
        Piece(groups[i][0], groups[i][1], int(max(lo, starts[i]) - starts[i]), int(min(hi, ends[i]) - starts[i]))
        for i in touched
    ]


class _TweetRows:
    """Streams the rows of a version as dicts, split across distributed ranks and DataLoader workers.

    Rank r of world_size W (defaults: torch.distributed's, else 0 of 1) with N DataLoader workers reads slot
    r * N + worker of W * N: a contiguous range of the version's rows, read row group by row group. Every row is read
    by exactly one (rank, worker), and ranks get equal counts (within one row), which DDP needs to stay in step.
    With `shuffle`, each slot reads its row groups and their rows in an order drawn from (seed, epoch, slot);
    call `set_epoch` each epoch. Which rows a rank gets never changes.
    """

    def __init__(
        self,
        table: str | Path,
        version: int | None = None,
        *,
        columns: Sequence[str] | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        shuffle: bool = False,
        seed: int = 0,
    ):
        import torch

        super().__init__()
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.rank = rank if rank is not None else (torch.distributed.get_rank() if distributed else 0)
        self.world_size = world_size if world_size is not None else (
            torch.distributed.get_world_size() if distributed else 1
        )
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not in 0..{self.world_size - 1}")
        self.columns = list(columns) if columns is not None else None
        self.groups = row_groups(shard_uris(table, version))
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        """Rows this rank yields over all its workers."""
        total = sum(g[2] for g in self.groups)
        return total * (self.rank + 1) // self.world_size - total * self.rank // self.world_size

    def pieces(self, worker: int = 0, num_workers: int = 1) -> list[Piece]:
        slots = self.world_size * num_workers
        return split(self.groups, self.rank * num_workers + worker, slots)

    def __iter__(self) -> Iterator[dict]:
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        pieces = self.pieces(worker, num_workers)
        rng = np.random.default_rng([self.seed, self.epoch, self.rank * num_workers + worker])
        if self.shuffle:
            pieces = [pieces[i] for i in rng.permutation(len(pieces))]
        with ExitStack() as opened:
            files: dict[str, pq.ParquetFile] = {}
            for piece in pieces:
                if piece.uri not in files:
                    files[piece.uri] = pq.ParquetFile(opened.enter_context(_open(piece.uri)))
                rows: pa.Table = files[piece.uri].read_row_group(piece.row_group, columns=self.columns)
                rows = rows.slice(piece.start, piece.stop - piece.start)
                if self.shuffle:
                    rows = rows.take(rng.permutation(rows.num_rows))
                yield from rows.to_pylist()


def __getattr__(name: str):
    """`TweetDataset` is `_TweetRows` as a torch IterableDataset, made on first use: importing torch takes seconds
    that polars, pyarrow and DuckDB readers should not pay."""
    if name != "TweetDataset":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from torch.utils.data import IterableDataset

    cls = type("TweetDataset", (_TweetRows, IterableDataset), {"__doc__": _TweetRows.__doc__, "__module__": __name__})
    globals()["TweetDataset"] = cls
    return cls
