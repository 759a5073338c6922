"""Published versions of a table: which files each holds, what changed between two, and reclaiming old files.

Readers pin a version (shard_uris); `diff` compares two versions by tweet id; `vacuum` deletes the data files that
no kept version needs, computed from the kept versions' own file lists, so every kept version stays readable. It
writes nothing to the Delta log (delta-rs' vacuum would add commits, i.e. new versions).
"""

from __future__ import annotations

import functools
import os
import shutil
import time
from pathlib import Path

import polars as pl
from deltalake import DeltaTable

from transforms import publish

EXAMPLES = 5
# Working folders under _tweetmill/ that a finished run no longer needs (run staging and the resumable step cache).
WORK_DIRS = ("staging", "cache")


def shard_uris(table: str | Path, version: int | None = None) -> list[str]:
    """The data files of `version` (default: the latest), as absolute paths or URIs, sorted: run ids start with
    their UTC time, so this is the order the runs published them. A PublishError if vacuum removed any of them:
    the readers would fail on the first missing file with a bare FileNotFoundError."""
    dt = publish.open_table(table, version)
    uris = sorted(dt.file_uris())
    if not all(map(_present, uris)):
        kept = [v for v, ok in readable(table).items() if ok]
        raise publish.PublishError(f"version {dt.version()} of {table} can no longer be read: vacuum removed its "
                                   f"files (readable: {_spans(kept) or 'none'})")
    return uris


def _present(uri: str) -> bool:
    """Whether a data file is still there; only local files are looked at, the only ones vacuum deletes."""
    return "://" in uri or os.path.exists(uri)


def readable(table: str | Path) -> dict[int, bool]:
    """Each version in the table's log -> whether all its data files are still there (False: vacuumed). Vacuum
    keeps the newest versions whole, so the vacuumed ones are the oldest: a binary search finds where they end,
    opening O(log V) versions instead of every one (an hourly table has thousands)."""
    present = functools.cache(_present)  # versions share most of their files
    versions = sorted(c["version"] for c in publish.open_table(table).history())
    first, end = 0, len(versions)  # the first readable version's index lies in [first, end]
    while first < end:
        middle = (first + end) // 2
        if all(map(present, DeltaTable(str(table), version=versions[middle]).file_uris())):
            end = middle
        else:
            first = middle + 1
    return {v: i >= first for i, v in enumerate(versions)}


def _spans(versions: list[int]) -> str:
    """Sorted version numbers as runs: [0, 2, 3, 4] -> "version 0, versions 2 to 4"."""
    runs: list[list[int]] = []
    for v in versions:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(f"version {a}" if a == b else f"versions {a} to {b}" for a, b in runs)


def _rows(table: Path, version: int, columns: list[str]) -> pl.LazyFrame:
    return pl.scan_delta(str(table), version=version).select(columns)


def _schema_names(table: Path, version: int) -> list[str]:
    return list(publish.open_table(table, version).schema().to_arrow().names)


def diff(table: str | Path, a: int, b: int) -> dict:
    """What changed from version `a` to version `b`: rows added and removed by id, runs added and removed, and
    per-language row counts when the table has a `lang` column."""
    table = Path(table)
    uris_a, uris_b = shard_uris(table, a), shard_uris(table, b)  # both exist and can be read, or a PublishError
    names_a, names_b = _schema_names(table, a), _schema_names(table, b)
    lang = "lang" in names_a and "lang" in names_b
    columns = ["id", "lang"] if lang else ["id"]
    rows_a, rows_b = _rows(table, a, columns), _rows(table, b, columns)
    added = rows_b.join(rows_a.select("id"), on="id", how="anti")
    removed = rows_a.join(rows_b.select("id"), on="id", how="anti")
    counts = pl.concat(
        [
            rows_a.select(pl.len().alias("n")).with_columns(pl.lit("a").alias("side")),
            rows_b.select(pl.len().alias("n")).with_columns(pl.lit("b").alias("side")),
            added.select(pl.len().alias("n")).with_columns(pl.lit("added").alias("side")),
            removed.select(pl.len().alias("n")).with_columns(pl.lit("removed").alias("side")),
        ]
    ).collect()
    n = dict(zip(counts["side"], counts["n"]))
    runs_a = {Path(u).parent.name for u in uris_a}
    runs_b = {Path(u).parent.name for u in uris_b}
    out = {
        "a": a,
        "b": b,
        "rows_a": n["a"],
        "rows_b": n["b"],
        "added": n["added"],
        "removed": n["removed"],
        "examples": {
            "added": added.select("id").sort("id").head(EXAMPLES).collect()["id"].to_list(),
            "removed": removed.select("id").sort("id").head(EXAMPLES).collect()["id"].to_list(),
        },
        "runs_added": sorted(runs_b - runs_a),
        "runs_removed": sorted(runs_a - runs_b),
    }
    if lang:
        per = (
            pl.concat([rows_a.with_columns(pl.lit("a").alias("side")), rows_b.with_columns(pl.lit("b").alias("side"))])
            .group_by("lang", "side")
            .len()
            .collect()
            .pivot(on="side", index="lang", values="len")
        )
        for side in ("a", "b"):
            if side not in per.columns:
                per = per.with_columns(pl.lit(0, pl.UInt32).alias(side))
        per = per.fill_null(0).sort("lang", nulls_last=True)
        out["languages"] = {
            r["lang"] if r["lang"] is not None else "null": {"a": r["a"], "b": r["b"], "delta": r["b"] - r["a"]}
            for r in per.iter_rows(named=True)
        }
    return out


def _hidden(rel: Path) -> bool:
    """Delta's rule: paths whose first component starts with "_" or "." (the log, our sidecar) are not data."""
    return rel.parts[0].startswith(("_", "."))


def _newest_mtime(path: Path) -> float:
    return max((p.stat().st_mtime for p in path.rglob("*")), default=path.stat().st_mtime)


def _dead_history(table: Path, cutoff: float, dry_run: bool) -> list[str]:
    """Dedupe state that no append reads again: of runs whose rows the latest version does not hold (a run that
    failed before its commit, rows an overwrite replaced) and left-over work folders; entries
    "_tweetmill/history/<stage>/<run id>/" (or <run id>.parquet, tables written before 2026-12-07)."""
    live, deleted = publish.published_runs(table), []
    for entry in sorted(publish.sidecar(table, "history").glob("*/*")):
        if (entry.stem if entry.is_file() else entry.name) in live or _newest_mtime(entry) > cutoff:
            continue
        deleted.append(entry.relative_to(table).as_posix() + ("/" if entry.is_dir() else ""))
        if not dry_run and entry.is_dir():
            shutil.rmtree(entry)
        elif not dry_run:
            entry.unlink()
    return deleted


def _unpublished_log_rows(table: Path, cutoff: float, dry_run: bool) -> list[str]:
    """Rejects and drop-log rows of runs that logged them and never committed (killed between the two), logged
    before `cutoff`; as "<log>/run=<run id>" entries."""
    # A run published if a commit names it, or its report exists (written after its commit; the commit itself may
    # have left the log once Delta cleans up expired log files).
    published = {v.get("run_id") for v in publish.versions(table)}
    published |= {p.stem for p in publish.sidecar(table, "runs").glob("*.json")}
    deleted = []
    for name in publish.LOGS:
        stale = sorted(run for run, commit in publish.log_commits(table, name).items()
                       if run not in published and commit.stat().st_mtime <= cutoff)
        if stale and not dry_run:
            publish.delete_log_rows(table, name, stale)
        deleted += [f"{publish.SIDECAR}/{name}/run={run}" for run in stale]
    return deleted


def vacuum(table: str | Path, keep: int, *, min_age_s: float = 3600.0, dry_run: bool = False) -> list[str]:
    """Delete what the latest `keep` versions do not need; returns the deleted paths, relative to the table.

    Deleted: Parquet data files that none of the kept versions references, old run working folders
    (_tweetmill/staging, _tweetmill/cache), the rejects and drop-log rows of runs that logged them but never
    committed (a run killed between the two; entries "_tweetmill/<log>/run=<id>"), and the dedupe history of runs
    the latest version does not hold (_dead_history). All only when untouched for
    `min_age_s` seconds: a run that is writing its shards or publishing right now has not committed yet, and its
    files and rows must survive. Versions older than the kept ones can no longer be read afterwards.
    """
    if keep < 1:
        raise ValueError("keep must be at least 1: the latest version is always kept")
    table = Path(table)
    root = Path(os.path.realpath(table))
    latest = publish.open_table(table).version()
    needed = {
        Path(os.path.realpath(u)).relative_to(root)
        for v in range(max(0, latest - keep + 1), latest + 1)
        for u in DeltaTable(str(table), version=v).file_uris()
    }
    cutoff = time.time() - min_age_s
    deleted: list[str] = []
    for path in sorted(root.rglob("*.parquet")):
        rel = path.relative_to(root)
        if _hidden(rel) or rel in needed or path.stat().st_mtime > cutoff:
            continue
        deleted.append(rel.as_posix())
        if not dry_run:
            path.unlink()
    for name in WORK_DIRS:
        folder = publish.sidecar(root, name)
        for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
            if entry.is_dir() and _newest_mtime(entry) <= cutoff:
                deleted.append(entry.relative_to(root).as_posix() + "/")
                if not dry_run:
                    shutil.rmtree(entry)
    deleted += _unpublished_log_rows(root, cutoff, dry_run)
    deleted += _dead_history(root, cutoff, dry_run)
    if not dry_run:
        for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            rel = folder.relative_to(root)
            if not _hidden(rel) and not any(folder.iterdir()):
                folder.rmdir()
    return deleted
