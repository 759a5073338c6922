"""Publishing: commit already-written shards as a new Delta table version, atomically, with the run's metadata.

The shards are written inside the table folder before the commit; until the commit lands they are invisible to every
Delta reader, so a crashed or rejected run leaves the table at its previous version. Beside the data, under
`_tweetmill/`, live the rejects and drop-log tables and one report per run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Literal, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable, Schema, write_deltalake
from deltalake.transaction import AddAction, CommitProperties, create_table_with_add_actions

SIDECAR = "_tweetmill"
META_KEY = "tweetmill"
LOG_RUN_KEY = "tweetmill_run"  # commit metadata of a sidecar log append: the run whose rows it added
LOG_DELETED_KEY = "tweetmill_deleted_runs"  # ... of a delete from it: the runs whose rows it removed (JSON list)
LOGS = ("rejects", "drops")


class PublishError(RuntimeError):
    pass


def data_dir(table: Path, run_id: str) -> Path:
    return table / "data" / run_id


def sidecar(table: Path, name: str) -> Path:
    return table / SIDECAR / name


def ensure_folder(folder: Path) -> None:
    """Create an output folder (and its parents) before any work, or say in one line why it cannot be."""
    if Path(folder).exists() and not Path(folder).is_dir():
        raise PublishError(f"the output folder {folder} is a file")
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PublishError(f"cannot create the output folder {folder}: {e.strerror or e}") from None
    if not os.access(folder, os.W_OK):
        raise PublishError(f"cannot write to the output folder {folder}")


def open_table(table: Path | str, version: int | None = None) -> DeltaTable:
    """The table at `version` (default: the latest); a PublishError that names what is missing when there is no
    such table or version."""
    if not DeltaTable.is_deltatable(str(table)):
        raise PublishError(f"no Delta table at {table}")
    dt = DeltaTable(str(table))
    if version is not None and version != dt.version():
        if not 0 <= version < dt.version():
            raise PublishError(f"{table} has versions 0 to {dt.version()}; there is no version {version}")
        dt = DeltaTable(str(table), version=version)
    return dt


def table_exists(table: Path) -> bool:
    return DeltaTable.is_deltatable(str(table))


def published_runs(table: Path) -> set[str]:
    """The runs whose shards the latest version holds (a shard lives in data/<run id>/)."""
    return {Path(u).parent.name for u in DeltaTable(str(table)).file_uris()}


def _add_action(table: Path, shard: Path) -> AddAction:
    meta = pq.read_metadata(shard)
    stat = shard.stat()
    stats = json.dumps({"numRecords": meta.num_rows})
    rel = shard.relative_to(table).as_posix()
    return AddAction(rel, stat.st_size, {}, int(stat.st_mtime * 1000), True, stats)


def commit_shards(
    table: Path,
    shards: Sequence[Path],
    schema: pa.Schema,
    metadata: dict[str, Any],
    mode: Literal["append", "overwrite"] = "append",
) -> int:
    """Commit the shards as one new version; returns that version. The commit is the publish point.

    Concurrent writers: when another run commits first, delta-rs checks the two commits for conflicts and retries
    ours at the next free version (appends never conflict), so both land and neither is lost.
    """
    actions = [_add_action(table, s) for s in shards]
    blob = json.dumps(metadata, sort_keys=True)
    props = CommitProperties(custom_metadata={META_KEY: blob})
    read_version = -1
    if not table_exists(table):
        table.mkdir(parents=True, exist_ok=True)
        create_table_with_add_actions(str(table), Schema.from_arrow(schema), actions, mode="append", commit_properties=props)
    else:
        dt = DeltaTable(str(table))
        current = pa.schema(dt.schema().to_arrow())
        if mode == "append" and [f.name for f in current] != [f.name for f in schema]:  # overwrite: a new schema
            raise PublishError(
                f"the run's columns do not match the table's; table has {', '.join(current.names)}, "
                f"run has {', '.join(schema.names)} (use a new table or --mode overwrite)"
            )
        read_version = dt.version()
        dt.create_write_transaction(actions, mode=mode, schema=schema, commit_properties=props)
    return _version_of(table, blob, read_version)


def _version_of(table: Path, blob: str, read_version: int) -> int:
    """The version our commit became: after a retry it is not the one we read + 1, and by now another run may have
    committed after it, so find it by its metadata among the commits newer than the version we read."""
    dt = DeltaTable(str(table))
    for commit in dt.history(limit=dt.version() - read_version):
        if commit.get(META_KEY) == blob:
            return commit["version"]
    raise PublishError(f"the commit to {table} is not in its log")  # not reached: a failed commit raised above


def append_log(table: Path, name: str, rows: pa.Table, run_id: str) -> None:
    """Append a run's rejects or drop log to its sidecar Delta table (rows tagged with the run id, and the commit
    too, so `log_commits` can tell which runs logged when)."""
    rows = rows.append_column("run_id", pa.array([run_id] * rows.num_rows, pa.string()))
    props = CommitProperties(custom_metadata={LOG_RUN_KEY: run_id})
    write_deltalake(str(sidecar(table, name)), rows, mode="append", commit_properties=props)


def log_commits(table: Path, name: str) -> dict[str, Path]:
    """Run id -> the Delta commit file that added its rows to the sidecar log `name`, for runs whose rows are still
    there (runs logged by this version of tweetmill on; read from the log's history, not from its rows)."""
    path = sidecar(table, name)
    if not DeltaTable.is_deltatable(str(path)):
        return {}
    history = DeltaTable(str(path)).history()
    deleted = {run for c in history if LOG_DELETED_KEY in c for run in json.loads(c[LOG_DELETED_KEY])}
    return {c[LOG_RUN_KEY]: path / "_delta_log" / f"{c['version']:020d}.json"
            for c in history if c.get(LOG_RUN_KEY) not in deleted | {None}}


def delete_log_rows(table: Path, name: str, run_ids: Sequence[str]) -> None:
    """Delete the rows of `run_ids` from the sidecar log `name` (a new version of that log, not of the data)."""
    runs = sorted(run_ids)
    quoted = ", ".join("'" + r.replace("'", "''") + "'" for r in runs)
    props = CommitProperties(custom_metadata={LOG_DELETED_KEY: json.dumps(runs)})
    DeltaTable(str(sidecar(table, name))).delete(f"run_id IN ({quoted})", commit_properties=props)


def read_log(table: Path, name: str, run_id: str | None = None) -> pa.Table:
    path = sidecar(table, name)
    if not DeltaTable.is_deltatable(str(path)):
        return pa.table({})
    data = DeltaTable(str(path)).to_pyarrow_table()
    if run_id is not None:
        data = data.filter(pa.compute.equal(data.column("run_id"), run_id))
    return data


def write_report(table: Path, run_id: str, report: dict) -> Path:
    path = sidecar(table, "runs") / f"{run_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True))
    os.replace(tmp, path)
    return path


def read_report(table: Path, run_id: str) -> dict:
    return json.loads((sidecar(table, "runs") / f"{run_id}.json").read_text())


def latest_metadata(table: Path) -> dict[str, Any]:
    """The tweetmill metadata of the table's latest commit, with its version ({} for a missing table or a foreign
    commit)."""
    if not table_exists(table):
        return {}
    last = DeltaTable(str(table)).history(limit=1)[0]
    return json.loads(last[META_KEY]) | {"version": last["version"]} if META_KEY in last else {}


def column_names(table: Path) -> list[str]:
    return [f.name for f in pa.schema(DeltaTable(str(table)).schema().to_arrow())]


def snapshot_rows(table: Path) -> int:
    """Rows in the table's latest version, from the commit log's per-file counts (no data file is read)."""
    counts = pa.table(DeltaTable(str(table)).get_add_actions(flatten=True)).column("num_records")
    return int(pc.sum(counts).as_py() or 0)


def versions(table: Path) -> list[dict[str, Any]]:
    """One entry per table version, newest first: version, time, operation and the run's metadata."""
    history = open_table(table).history()
    out = []
    for commit in history:
        meta = json.loads(commit[META_KEY]) if META_KEY in commit else {}
        out.append(
            {
                "version": commit.get("version"),
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(commit.get("timestamp", 0) / 1000)),
                "operation": commit.get("operation"),
                **meta,
            }
        )
    return out
