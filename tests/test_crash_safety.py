"""Crash safety and concurrent writers: a run killed anywhere in write/commit leaves the table at a complete version
and a rerun finishes it; two runs committing at once both land as versions.

Each interrupted run is a child process that wraps one of our own functions (or a library call we make) to SIGKILL
itself at a chosen point, or after a seeded random delay; the checks then read the table as a training job would.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from transforms import loaders, pipeline, publish
from transforms.config import load_config
from transforms.versions import vacuum

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {"stages": ["normalize", "dedupe_exact", "dedupe_minhash"], "part_rows": 64,
            "output": {"shard_max_rows": 40, "row_group_rows": 20}}
DEDUPE_STAGES = ("dedupe_exact", "dedupe_minhash")

# The child: run one append with kill points or barriers installed by wrapping functions; print the report.
CHILD = r"""
import json, os, signal, sys, threading, time
from pathlib import Path

import matplotlib.figure
import pyarrow.parquet as pq
from deltalake import DeltaTable

from transforms import pipeline, publish
from transforms.config import load_config

spec = json.loads(sys.argv[1])
TARGETS = {
    "shard_write": (pq.ParquetWriter, "write_table"),
    "append_log": (publish, "append_log"),
    "write_history": (pipeline.Curation, "write_history"),
    "delta_commit": (DeltaTable, "create_write_transaction"),
    "savefig": (matplotlib.figure.Figure, "savefig"),
    "write_report": (publish, "write_report"),
    "run_stage": (pipeline.Curation, "run_stage"),
}
inside = {"write_shards": False}


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def wait_for(names):
    folder = Path(spec["sync"])
    while not all((folder / n).exists() for n in names):
        time.sleep(0.002)


def wrap(target, action, when="before", n=1, within=None):
    owner, name = TARGETS[target]
    original, calls = getattr(owner, name), [0]

    def wrapper(*args, **kwargs):
        if within is None or inside[within]:
            calls[0] += 1
        hit = calls[0] == n and (within is None or inside[within])
        if hit and when == "before":
            action()
        out = original(*args, **kwargs)
        if hit and when == "after":
            action()
        return out

    setattr(owner, name, wrapper)


original_write_shards = pipeline.Curation.write_shards


def write_shards(self):
    # the window the kill points and the random timer are about: shards, validation, publish
    inside["write_shards"] = True
    if "kill_after_s" in spec:
        threading.Timer(spec["kill_after_s"], die).start()
    try:
        return original_write_shards(self)
    finally:
        inside["write_shards"] = False


pipeline.Curation.write_shards = write_shards
if "kill" in spec:
    wrap(**spec["kill"], action=die)
for b in spec.get("barriers", []):  # the runs named wait for each other there
    def barrier(mark=f"{b['target']}.{b['when']}"):
        (Path(spec["sync"]) / f"{spec['name']}.{mark}").touch()
        wait_for([f"{name}.{mark}" for name in b["names"]])
    wrap(b["target"], barrier, when=b["when"])
if "after" in spec:  # wait for another run to finish before the call named
    wrap(spec["after"]["target"], lambda: wait_for([spec["after"]["name"]]), n=spec["after"].get("n", 1))

start = time.perf_counter()
c = pipeline.Curation([spec["input"]], spec["table"], load_config(**spec["config"]))
c.ingest()
c.check_rejects()
for i in range(len(c.stages)):
    c.run_stage(i)
tail = time.perf_counter()
c.write_shards()
c.validate()
report = c.publish()
report["tail_s"] = time.perf_counter() - tail
if "sync" in spec:
    (Path(spec["sync"]) / (spec["name"] + ".done")).touch()
print(json.dumps(report))
"""


def _tweets(path: Path, ids: range, seed: int, copies: list[str] = ()) -> Path:
    """Distinct random-word tweets with a few exact and near duplicates, `copies` (texts from elsewhere) and two
    lines that do not parse."""
    rng = random.Random(seed)
    words = "rain sun city river train coffee music game team vote market code cloud bird tree book film road".split()
    texts = [" ".join(rng.choice(words) + str(rng.randrange(100)) for _ in range(12)) for _ in ids]
    texts[5], texts[9] = texts[3], texts[7] + " !!"  # an exact and a near duplicate
    if copies:
        texts[-len(copies):] = copies
    lines = [json.dumps({"id": str(i), "text": t, "created_at": f"2024-01-{1 + k % 28:02d}T00:00:00.000Z",
                         "author_id": str(k % 17)}) for k, (i, t) in enumerate(zip(ids, texts))]
    path.write_text("\n".join(lines + ['{"id": "1", "text": "cut', '{"text": "no id"}']) + "\n")
    return path


def _texts(path: Path, n: int) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text().splitlines()[:n]]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Inputs a (version 0), b and c (appends; b repeats some of a's tweets) and a table at version 0."""
    root = tmp_path_factory.mktemp("crash")
    a = _tweets(root / "a.jsonl", range(1000, 1200), seed=1)
    b = _tweets(root / "b.jsonl", range(2000, 2200), seed=2, copies=_texts(a, 6))
    c = _tweets(root / "c.jsonl", range(3000, 3150), seed=3)
    base = root / "base"
    v0 = pipeline.run([str(a)], base, load_config(**SETTINGS))
    assert v0["version"] == 0 and v0["output_records"] > 150
    return {"root": root, "a": a, "b": b, "c": c, "base": base}


def _fresh(world, name: str) -> Path:
    table = world["root"] / name
    shutil.copytree(world["base"], table)
    return table


def _child(table: Path, source: Path, **spec) -> subprocess.Popen:
    spec = {"table": str(table), "input": str(source), "config": SETTINGS, **spec}
    return subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(spec)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> tuple[int, dict | None]:
    out, err = proc.communicate(timeout=240)
    if proc.returncode == 0:
        return 0, json.loads(out.strip().splitlines()[-1])
    assert proc.returncode == -signal.SIGKILL, err[-3000:]
    return proc.returncode, None


@pytest.fixture(scope="module")
def reference(world):
    """An uninterrupted append of b into a copy of version 0, by the same child script."""
    table = _fresh(world, "reference")
    rc, report = _finish(_child(table, world["b"]))
    assert rc == 0 and report["version"] == 1
    return {"table": table, "report": report, "rows": _rows(table, 1)}


def _rows(table: Path, version: int) -> pl.DataFrame:
    return pl.read_delta(str(table), version=version).sort("id")


def _reads(shard: Path) -> bool:
    try:
        pq.read_metadata(shard)
    except pa.ArrowInvalid:
        return False
    return True


def _commits(table: Path) -> dict[int, dict]:
    return {v["version"]: v for v in publish.versions(table)}


def assert_complete(table: Path) -> int:
    """Every version of the table is whole: its files exist and read, its rows are the sum of the runs' reported
    outputs (append-only table), no id twice, and the readers agree. Returns the latest version."""
    latest = DeltaTable(str(table)).version()
    commits = _commits(table)
    assert sorted(commits) == list(range(latest + 1))
    for v in range(latest + 1):
        uris = DeltaTable(str(table), version=v).file_uris()
        assert uris and all(os.path.exists(u) for u in uris)
        rows = sum(pq.read_table(u).num_rows for u in uris)
        assert rows == sum(commits[k]["output_records"] for k in range(v + 1))
        frame = loaders.polars_frame(table, v).select("id").collect()
        assert frame.height == rows == loaders.pyarrow_dataset(table, v).count_rows()
        assert frame["id"].n_unique() == rows
    return latest


def _funnel(stages: list[dict]) -> list[dict]:
    return [{k: v for k, v in s.items() if k != "reused"} for s in stages]


def assert_sidecars(table: Path) -> None:
    """Each published run's rejects and drop logs match its report exactly (never counted twice), and its report,
    data card and dedupe history are there."""
    for v, commit in _commits(table).items():
        run_id = commit["run_id"]
        report = publish.read_report(table, run_id)
        assert report["version"] == v and report["output_records"] == commit["output_records"]
        assert _funnel(report["stages"]) == _funnel(commit["stages"])
        drops = publish.read_log(table, "drops", run_id)
        assert drops.num_rows == sum(s["dropped"] for s in commit["stages"])
        assert len(drops.column("id").unique()) == drops.num_rows
        assert publish.read_log(table, "rejects", run_id).num_rows == commit["rejected"]
        assert (publish.sidecar(table, "cards") / f"v{v}" / "DATACARD.md").exists()
        for stage in DEDUPE_STAGES:
            assert list((publish.sidecar(table, "history") / stage / run_id).glob("part-*.parquet"))


def _history_rows(table: Path, version: int) -> dict[str, int]:
    run_id = _commits(table)[version]["run_id"]
    return {s: sum(pq.read_metadata(f).num_rows for f in (publish.sidecar(table, "history") / s / run_id).iterdir())
            for s in DEDUPE_STAGES}


def assert_rerun_matches(table: Path, world, reference, committed: bool) -> None:
    """The same command again: it succeeds, and the table ends exactly as the uninterrupted run left its copy. After
    a kill past the commit it publishes nothing new and finishes the killed run's version."""
    killed_run = _commits(table)[1]["run_id"] if committed else None
    report = pipeline.run([str(world["b"])], table, load_config(**SETTINGS))
    assert report["version"] == 1 and assert_complete(table) == 1
    assert report.get("already_published", False) == committed
    assert killed_run in (None, report["run_id"])
    ref = reference["report"]
    for key in ("input_records", "rejected", "output_records"):
        assert report[key] == ref[key], key
    assert _funnel(report["stages"]) == _funnel(ref["stages"])
    assert _rows(table, 1).equals(reference["rows"])
    assert_sidecars(table)
    assert _history_rows(table, 1) == _history_rows(reference["table"], 1)
    # A run killed after logging and before committing left rows no version counts; vacuum takes exactly those.
    vacuum(table, keep=2, min_age_s=0)
    assert_sidecars(table)
    commits = _commits(table).values()
    assert publish.read_log(table, "drops").num_rows == sum(s["dropped"] for c in commits for s in c["stages"])
    assert publish.read_log(table, "rejects").num_rows == sum(c["rejected"] for c in commits)


# Deterministic kill points, in run order, with the version the table must be at right after the kill.
POINTS = {
    "mid-shard": ({"target": "shard_write", "when": "after", "n": 2, "within": "write_shards"}, 0),
    "after-rejects-log": ({"target": "append_log", "when": "after", "n": 1}, 0),
    "after-drops-log": ({"target": "append_log", "when": "after", "n": 2}, 0),
    "after-history": ({"target": "write_history", "when": "after"}, 0),
    "before-delta-log": ({"target": "delta_commit", "when": "before"}, 0),
    "after-delta-log": ({"target": "delta_commit", "when": "after"}, 1),
    "mid-data-card": ({"target": "savefig", "when": "after"}, 1),
    "after-report": ({"target": "write_report", "when": "after"}, 1),
}


@pytest.mark.slow
@pytest.mark.parametrize("point", list(POINTS))
def test_kill_at_a_point_leaves_a_complete_version_and_a_rerun_finishes(world, reference, point):
    kill, expected = POINTS[point]
    table = _fresh(world, f"kill-{point}")
    rc, _ = _finish(_child(table, world["b"], kill=kill))
    assert rc == -signal.SIGKILL
    assert assert_complete(table) == expected
    if expected == 1:
        assert _rows(table, 1).equals(reference["rows"])
    if point == "mid-shard":  # the kill left a half-written shard behind, which no version references
        assert any(not _reads(f) for f in (table / "data").rglob("*.parquet"))
    assert_rerun_matches(table, world, reference, committed=expected == 1)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_kill_at_a_random_time_leaves_a_complete_version_and_a_rerun_finishes(world, reference, seed):
    delay = random.Random(seed).uniform(0.0, reference["report"]["tail_s"])
    table = _fresh(world, f"random-{seed}")
    rc, report = _finish(_child(table, world["b"], kill_after_s=delay))
    latest = assert_complete(table)
    assert latest in (0, 1) and (rc != 0 or report["version"] == 1)
    assert_rerun_matches(table, world, reference, committed=latest == 1)


def test_a_retried_publish_logs_and_commits_once(world, reference, monkeypatch):
    """A Prefect task retry calls publish again on the same run: here once after it failed between the rejects and
    the drops log, once after it failed between the commit and the data card."""
    table = _fresh(world, "retried-publish")
    c = pipeline.Curation([str(world["b"])], table, load_config(**SETTINGS))
    c.ingest()
    for i in range(len(c.stages)):
        c.run_stage(i)
    c.write_shards()
    c.validate()
    append_log = publish.append_log

    def drops_fail(table, name, rows, run_id):
        if name == "drops":
            raise OSError("the drops log could not be written")
        append_log(table, name, rows, run_id)

    def card_fails(self, report):
        raise OSError("the data card could not be written")

    monkeypatch.setattr(publish, "append_log", drops_fail)
    with pytest.raises(OSError, match="drops log"):
        c.publish()
    assert DeltaTable(str(table)).version() == 0
    monkeypatch.setattr(publish, "append_log", append_log)
    monkeypatch.setattr(pipeline.Curation, "write_data_card", card_fails)
    with pytest.raises(OSError, match="data card"):
        c.publish()
    assert DeltaTable(str(table)).version() == 1
    monkeypatch.undo()
    report = c.publish()
    assert report["version"] == 1 and report["run_id"] == c.run_id and assert_complete(table) == 1
    assert_sidecars(table)
    assert _rows(table, 1).equals(reference["rows"])


@pytest.fixture(scope="module")
def alone(world, reference) -> dict[str, pl.DataFrame]:
    """The rows b and c each add to version 0 when it is the only run."""
    table = _fresh(world, "alone-c")
    pipeline.run([str(world["c"])], table, load_config(**SETTINGS))
    return {name: _rows(t, 1).filter(~pl.col("id").is_in(_rows(t, 0)["id"].implode()))
            for name, t in (("b", reference["table"]), ("c", table))}


def _runs_together(world, table: Path, **specs) -> dict[str, dict]:
    sync = table.parent / f"{table.name}-sync"
    sync.mkdir()
    procs = {name: _child(table, world[name], name=name, sync=str(sync), **spec) for name, spec in specs.items()}
    reports = {}
    for name, proc in procs.items():
        rc, reports[name] = _finish(proc)
        assert rc == 0
    return reports


def assert_both_published(table: Path, reports: dict[str, dict], alone: dict[str, pl.DataFrame]) -> None:
    assert assert_complete(table) == 2
    commits = _commits(table)
    for report in reports.values():  # each run names the version it made, and that version is its commit
        commit = commits[report["version"]]
        assert commit["run_id"] == report["run_id"] and commit["output_records"] == report["output_records"]
        assert _funnel(commit["stages"]) == _funnel(report["stages"])
    assert {reports[n]["version"] for n in reports} == {1, 2}
    assert_sidecars(table)
    # Both runs' rows, each exactly as if it had run alone on version 0 (neither dedupes against the other).
    expected = pl.concat([_rows(table, 0), *(alone[name] for name in reports)])
    assert _rows(table, 2).equals(expected.sort("id"))


@pytest.mark.slow
def test_two_runs_committing_at_once_both_land(world, alone):
    table = _fresh(world, "concurrent-commit")
    # Both read version 0 and commit at once (one commit is retried at the next version); neither looks at the
    # table again until both have committed.
    barriers = [{"target": "delta_commit", "when": when, "names": ["b", "c"]} for when in ("before", "after")]
    reports = _runs_together(world, table, b={"barriers": barriers}, c={"barriers": barriers})
    assert_both_published(table, reports, alone)


@pytest.mark.slow
def test_a_run_finishing_while_another_is_midway_leaves_its_work_alone(world, alone):
    table = _fresh(world, "concurrent-overlap")
    # c ingests, then waits for b to publish (and tidy up its working steps) before running its stages
    reports = _runs_together(world, table, b={}, c={"after": {"target": "run_stage", "name": "b.done"}})
    assert_both_published(table, reports, alone)
