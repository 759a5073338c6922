"""Versions of a published table: shard lists, diffs by id, and a vacuum that never breaks a kept version."""

from __future__ import annotations

import os
import time

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.curated import curated_rows, publish_run, write_shards
from transforms import publish
from transforms.versions import diff, readable, shard_uris, vacuum

RUNS = ["20240101T000000Z-r1", "20240102T000000Z-r2", "20240103T000000Z-r3", "20240104T000000Z-r4"]
ID0, ID1 = 1_500_000_000_000_000_000, 1_600_000_000_000_000_000


def _build(path):
    """v0: r1 (300 rows); v1: + r2 (200); v2: overwrite with r3 (250: 100 of r1's ids, 150 new); v3: + r4 (50)."""
    publish_run(path, curated_rows(300, seed=1, first_id=ID0), RUNS[0], shard_rows=100)
    publish_run(path, curated_rows(200, seed=2, first_id=ID1), RUNS[1], shard_rows=100)
    publish_run(path, curated_rows(250, seed=3, first_id=ID0 + 200), RUNS[2], shard_rows=100, mode="overwrite")
    publish_run(path, curated_rows(50, seed=4, first_id=ID1 + 1000), RUNS[3], shard_rows=100)
    return path


def _age(path, seconds):
    old = time.time() - seconds
    for p in [path, *path.rglob("*")]:
        os.utime(p, (old, old))


@pytest.fixture
def table(tmp_path):
    return _build(tmp_path / "table")


def _snapshot(table, version) -> pl.DataFrame:
    return pl.read_delta(str(table), version=version).sort("id")


def test_shard_uris_pin_a_version(table):
    assert [len(shard_uris(table, v)) for v in range(4)] == [3, 5, 3, 4]
    uris = shard_uris(table, 1)
    assert uris == sorted(uris) and all(os.path.exists(u) for u in uris)
    assert shard_uris(table) == shard_uris(table, 3)


def test_diff_counts_rows_by_id_and_languages(table):
    d = diff(table, 1, 2)
    assert (d["rows_a"], d["rows_b"]) == (500, 250)
    assert d["added"] == 150 and d["removed"] == 400  # r3 shares ids ID0+200..ID0+299 with r1
    assert d["runs_added"] == [RUNS[2]] and d["runs_removed"] == RUNS[:2]
    assert d["examples"]["added"] == [str(ID0 + 300 + i) for i in range(5)]
    a, b = _snapshot(table, 1), _snapshot(table, 2)
    for lang, counts in d["languages"].items():
        expected_a, expected_b = a.filter(pl.col("lang") == lang).height, b.filter(pl.col("lang") == lang).height
        assert counts == {"a": expected_a, "b": expected_b, "delta": expected_b - expected_a}
    assert sum(c["b"] for c in d["languages"].values()) == 250
    same = diff(table, 3, 3)
    assert (same["added"], same["removed"], same["runs_added"]) == (0, 0, [])


def test_vacuum_keeps_every_file_the_kept_versions_need(table):
    kept = {v: _snapshot(table, v) for v in (2, 3)}
    orphan = write_shards(curated_rows(10, seed=9), publish.data_dir(table, "20240105T000000Z-failed"), 10, 10)
    (publish.sidecar(table, "staging") / "old-run").mkdir(parents=True)
    (publish.sidecar(table, "staging") / "old-run" / "part.parquet").write_bytes(b"x")
    (publish.sidecar(table, "cache") / "abc").mkdir(parents=True)
    _age(table, 7200)
    deleted = vacuum(table, keep=2)
    assert sorted(p for p in deleted if p.endswith(".parquet")) == sorted(
        [f"data/{r}/part-{i:05d}.zstd.parquet" for r in RUNS[:2] for i in range(3 if r == RUNS[0] else 2)]
        + [orphan[0].relative_to(table).as_posix()]
    )
    assert "_tweetmill/staging/old-run/" in deleted and "_tweetmill/cache/abc/" in deleted
    assert not (table / "data" / RUNS[0]).exists()
    for v, rows in kept.items():
        assert _snapshot(table, v).equals(rows)  # every column of every row reads back
    with pytest.raises(Exception):
        _snapshot(table, 1)
    assert (publish.sidecar(table, "runs") / f"{RUNS[0]}.json").exists()  # reports and logs stay
    assert [v["version"] for v in publish.versions(table)] == [3, 2, 1, 0]  # vacuum commits nothing


def test_a_vacuumed_version_is_marked_and_reading_it_names_the_readable_ones(table):
    assert readable(table) == {0: True, 1: True, 2: True, 3: True}
    _age(table, 7200)
    vacuum(table, keep=1)
    assert readable(table) == {0: False, 1: False, 2: True, 3: True}  # v2 is r3 alone, which v3 keeps
    message = f"version 1 of {table} can no longer be read: vacuum removed its files (readable: versions 2 to 3)"
    for read in (lambda: shard_uris(table, 1), lambda: diff(table, 3, 1)):
        with pytest.raises(publish.PublishError) as e:
            read()
        assert str(e.value) == message
    assert diff(table, 2, 3)["added"] == 50


def test_vacuum_spares_young_files_and_dry_runs(table):
    _age(table, 7200)
    young = write_shards(curated_rows(10, seed=9), publish.data_dir(table, "20240105T000000Z-writing"), 10, 10)
    planned = vacuum(table, keep=1, dry_run=True)
    assert all((table / p).exists() for p in planned if p.endswith(".parquet"))
    assert young[0].relative_to(table).as_posix() not in planned  # a run still writing its shards
    assert vacuum(table, keep=1) == planned
    assert _snapshot(table, 3).height == 300 and young[0].exists()
    assert vacuum(table, keep=1, min_age_s=0) == [young[0].relative_to(table).as_posix()]


def test_vacuum_keeping_all_versions_deletes_nothing_they_need(table):
    _age(table, 7200)
    assert vacuum(table, keep=4) == []
    assert [_snapshot(table, v).height for v in range(4)] == [300, 500, 250, 300]
    with pytest.raises(ValueError):
        vacuum(table, keep=0)


def test_vacuum_deletes_the_log_rows_of_runs_that_never_committed(table):
    """A run killed between logging its rejects and drops and committing its shards: its rows go, once old."""
    for run in (RUNS[3], "20240105T000000Z-killed"):
        publish.append_log(table, "drops", pa.table({"id": ["1", "2"], "stage": ["s", "s"], "reason": ["r", "r"],
                                                     "dup_of": [None, None]}), run)
        publish.append_log(table, "rejects", pa.table({"source_file": ["f"], "source_line": [1], "reason": ["bad"],
                                                       "excerpt": ["{"]}), run)
    assert vacuum(table, keep=4) == []  # a run may be publishing right now
    _age(table, 7200)
    assert vacuum(table, keep=4, dry_run=True) == [f"_tweetmill/{log}/run=20240105T000000Z-killed"
                                                   for log in ("rejects", "drops")]
    assert publish.read_log(table, "drops").num_rows == 4
    vacuum(table, keep=4)
    for log in ("rejects", "drops"):
        assert set(publish.read_log(table, log).column("run_id").to_pylist()) == {RUNS[3]}
    assert vacuum(table, keep=4) == []


def test_vacuum_deletes_the_history_no_append_reads(table):
    """Dedupe state of runs the latest version does not hold (r1, r2: replaced by the overwrite; a run killed before
    its commit; a left-over work folder) goes once old; the live runs' (r3, r4), in either layout, stay."""
    history = publish.sidecar(table, "history")
    state = pa.table({"id": ["1"]})
    for run in (*RUNS, "20240105T000000Z-killed", "_work-20240105T000000Z-killed"):
        (history / "dedupe_minhash" / run).mkdir(parents=True)
        pq.write_table(state, history / "dedupe_minhash" / run / "part-00000.parquet")
    (history / "dedupe_exact").mkdir()
    for run in (RUNS[0], RUNS[3]):  # the layout before 2026-12-07: one file per run
        pq.write_table(state, history / "dedupe_exact" / f"{run}.parquet")
    assert vacuum(table, keep=4) == []  # a run may be writing its history right now
    _age(table, 7200)
    dead = [f"_tweetmill/history/dedupe_exact/{RUNS[0]}.parquet"] + [
        f"_tweetmill/history/dedupe_minhash/{run}/"
        for run in ("20240101T000000Z-r1", "20240102T000000Z-r2", "20240105T000000Z-killed",
                    "_work-20240105T000000Z-killed")]
    assert vacuum(table, keep=4, dry_run=True) == dead
    assert vacuum(table, keep=4) == dead
    assert sorted(p.relative_to(history).as_posix() for p in history.rglob("*.parquet")) == [
        f"dedupe_exact/{RUNS[3]}.parquet", f"dedupe_minhash/{RUNS[2]}/part-00000.parquet",
        f"dedupe_minhash/{RUNS[3]}/part-00000.parquet"]
    assert _snapshot(table, 3).height == 300
