"""Readers for training jobs: every reader sees exactly the rows of the pinned version; the PyTorch reader splits
them across ranks and workers with no overlap and no gaps."""

from __future__ import annotations

import doctest
import subprocess
import sys
from collections import Counter

import polars as pl
import pytest
from torch.utils.data import DataLoader

from tests.curated import curated_rows, publish_run
from transforms import loaders
from transforms.loaders import TweetDataset, duckdb_relation, polars_frame, pyarrow_dataset, split


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """Version 0: 300 rows in 3 shards of 100 (row groups of 25); version 1 appends 200 rows in 2 shards."""
    path = tmp_path_factory.mktemp("loaders") / "table"
    publish_run(path, curated_rows(300, seed=1), "20240101T000000Z-aaaa", shard_rows=100, row_group_rows=25)
    publish_run(path, curated_rows(200, seed=2, first_id=1_600_000_000_000_000_000), "20240102T000000Z-bbbb",
                shard_rows=100, row_group_rows=25)
    return path


def _ids(table, version) -> list[str]:
    return pl.read_delta(str(table), version=version, columns=["id"])["id"].to_list()


def test_module_examples_run(table):
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(loaders, globs={**vars(loaders), "table": table}):
        runner.run(test)
    assert runner.summarize(verbose=False).attempted >= 5
    assert runner.summarize(verbose=False).failed == 0


@pytest.mark.parametrize("version", [0, 1])
def test_readers_agree_on_each_version(table, version):
    expected = sorted(_ids(table, version))
    assert sorted(polars_frame(table, version).select("id").collect()["id"].to_list()) == expected
    assert sorted(pyarrow_dataset(table, version).to_table(columns=["id"]).column("id").to_pylist()) == expected
    assert sorted(r[0] for r in duckdb_relation(table, version).select("id").fetchall()) == expected
    halves = [TweetDataset(table, version, columns=["id"], rank=rank, world_size=2) for rank in range(2)]
    torch_ids = [row["id"] for half in halves for row in half]
    assert sorted(torch_ids) == expected


@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_every_row_exactly_once_across_ranks(table, world_size):
    expected = Counter(_ids(table, 1))
    per_rank = [[r["id"] for r in TweetDataset(table, 1, columns=["id"], rank=k, world_size=world_size)]
                for k in range(world_size)]
    assert Counter(i for ids in per_rank for i in ids) == expected
    sizes = [len(ids) for ids in per_rank]
    assert max(sizes) - min(sizes) <= 1
    assert sizes == [len(TweetDataset(table, 1, rank=k, world_size=world_size)) for k in range(world_size)]


def test_dataloader_workers_split_a_rank(table):
    expected = Counter(_ids(table, 1))
    seen = Counter()
    for rank in range(3):
        dataset = TweetDataset(table, 1, columns=["id", "lang"], rank=rank, world_size=3)
        loader = DataLoader(dataset, batch_size=16, num_workers=2)
        seen.update(i for batch in loader for i in batch["id"])
    assert seen == expected


def test_split_is_by_row_group_and_balanced_over_few_shards():
    groups = [(f"s{s}", g, 25) for s in range(3) for g in range(4)]  # 3 shards x 4 row groups = 300 rows
    plans = [split(groups, k, 8) for k in range(8)]
    rows = [sum(p.stop - p.start for p in plan) for plan in plans]
    assert rows == [37, 38, 37, 38, 37, 38, 37, 38]
    assert all(len(plan) <= 3 for plan in plans)  # ~1.5 row groups each, never whole shards
    covered = Counter((p.uri, p.row_group, r) for plan in plans for p in plan for r in range(p.start, p.stop))
    assert len(covered) == 300 and set(covered.values()) == {1}
    assert split([], 0, 4) == []


def test_shuffle_changes_order_not_membership(table):
    plain = [r["id"] for r in TweetDataset(table, 1, columns=["id"], rank=1, world_size=2)]
    shuffled = TweetDataset(table, 1, columns=["id"], rank=1, world_size=2, shuffle=True, seed=3)
    first = [r["id"] for r in shuffled]
    assert first != plain and sorted(first) == sorted(plain)
    assert [r["id"] for r in shuffled] == first  # deterministic for one epoch
    shuffled.set_epoch(1)
    assert [r["id"] for r in shuffled] != first


def test_rank_must_be_in_range(table):
    with pytest.raises(ValueError, match="rank 2"):
        TweetDataset(table, 1, rank=2, world_size=2)


@pytest.mark.slow
def test_spark_reads_the_pinned_version(table):
    from transforms.engines.spark_session import SparkOptions, session, stop
    from transforms.loaders import spark_frame

    spark = session(SparkOptions(master="local[1]", conf={"spark.ui.enabled": "false"}))
    try:
        for version in (0, 1):
            ids = sorted(r["id"] for r in spark_frame(spark, table, version).select("id").collect())
            assert ids == sorted(_ids(table, version))
    finally:
        stop()


def test_importing_the_loaders_does_not_import_torch():
    """Polars, pyarrow and DuckDB users should not wait seconds for torch; TweetDataset still comes with it."""
    code = ("import sys; from transforms import loaders; assert 'torch' not in sys.modules; "
            "import pickle; from torch.utils.data import IterableDataset; "
            "assert issubclass(loaders.TweetDataset, IterableDataset); "
            "assert pickle.loads(pickle.dumps(loaders.TweetDataset)) is loaders.TweetDataset")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_duckdb_reads_a_version_without_rows(tmp_path):
    path = tmp_path / "table"
    publish_run(path, curated_rows(0), "20240101T000000Z-empty")
    relation = duckdb_relation(path, 0)
    assert relation.aggregate("count(*)").fetchall() == [(0,)]
    assert relation.columns == pl.read_delta(str(path), version=0).columns
    dataset = pyarrow_dataset(path, 0)
    assert dataset.to_table().num_rows == 0 and dataset.schema.names == relation.columns
