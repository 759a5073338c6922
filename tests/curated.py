"""Synthetic curated output (the columns every stage publishes) and Delta tables built from it, for the gate,
versions, loaders and data-card tests and bench/bench_gate.py. Vectorized and seeded: a million rows take seconds.

Tables are committed with transforms.publish.commit_shards, as pipeline.run does, so they look like published runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from transforms import publish
from transforms.schema import TWEET_SCHEMA, conform
from transforms.stages.toxicity import DEFAULT_MODEL, tuned_threshold

ALL_STAGES = ("normalize", "dedupe_exact", "langid", "dedupe_minhash", "toxicity", "pii")
WORDS = np.array(
    "the a to and of in is for on you it that this my with just be at me so have are not was but your all like what "
    "now get today new love good day time people one can will out about more when great #news café naïve 東京 😀 "
    "@user http <EMAIL> <PHONE> día größer".split()
)
LANGS = np.array(["en", "fr", "de", "es"])


def texts(rng: np.random.Generator, n: int) -> pa.Array:
    lengths = rng.integers(3, 30, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    words = pa.array(WORDS).take(pa.array(rng.integers(0, len(WORDS), int(lengths.sum()))))
    return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), words), " ")


def curated_rows(n: int, *, seed: int = 0, first_id: int = 1_500_000_000_000_000_000,
                 stages: Sequence[str] = ALL_STAGES) -> pa.Table:
    """`n` clean curated rows: canonical columns plus the columns of `stages`, all within the default thresholds."""
    rng = np.random.default_rng(seed)
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    base = pa.table(
        {
            "id": pc.cast(pa.array(ids), pa.string()),
            "text": texts(rng, n),
            "created_at": pa.array(1_700_000_000_000_000 + ids % 10**9, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "author_id": pc.cast(pa.array(rng.integers(1, 10**6, n)), pa.string()),
            "source_format": pa.array(np.full(n, "v2")),
            "source_file": pa.array(np.full(n, "synthetic.jsonl")),
            "source_line": pa.array(np.arange(1, n + 1, dtype=np.int64)),
        }
    )
    table = conform(base, TWEET_SCHEMA)
    cols: dict[str, pa.Array] = {}
    if "dedupe_exact" in stages:
        with np.errstate(over="ignore"):  # distinct ids give distinct hashes: the multiplier is odd
            cols["dedupe_hash"] = pa.array((ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)).view(np.int64))
        cols["exact_dup_of"] = pa.nulls(n, pa.string())
        cols["exact_cluster_size"] = pa.array(rng.integers(1, 3, n), pa.int64())
    if "langid" in stages:
        cols["lang"] = pa.array(LANGS[rng.integers(0, len(LANGS), n)])
        cols["lang_score"] = pa.array(rng.uniform(0.5, 1.0, n).astype(np.float32))
    if "dedupe_minhash" in stages:
        cols["minhash_dup_of"] = pa.nulls(n, pa.string())
        cols["minhash_cluster_size"] = pa.array(np.ones(n, dtype=np.int64))
    if "toxicity" in stages:
        tox = rng.uniform(0.0, 0.98 * tuned_threshold(DEFAULT_MODEL), n).astype(np.float32)  # under the shipped one
        cols["toxicity"] = pa.array(tox, mask=rng.random(n) < 0.1)  # some rows are not scored
        cols["is_toxic"] = pa.array(np.zeros(n, dtype=bool))
    if "pii" in stages:
        cols["pii_types"] = pa.array([[]] * n, pa.list_(pa.string()))
    for name, values in cols.items():
        table = table.append_column(name, values)
    return table


def report_for(run_id: str, rows: int, stages: Sequence[str], dropped: dict[str, int] | None = None,
               rejected: int = 0) -> dict:
    """A run report whose funnel reconciles: stage i drops dropped[stage] rows with reason "test"."""
    dropped = dropped or {}
    total = rows + sum(dropped.values())
    summaries, current = [], total
    for name in stages:
        d = dropped.get(name, 0)
        summaries.append({"name": name, "input": current, "output": current - d, "dropped": d,
                          "reasons": {"test": d} if d else {}})
        current -= d
    return {"run_id": run_id, "input_records": total + rejected, "rejected": rejected, "output_records": rows,
            "stages": summaries, "config_hash": "test", "code_version": "test", "inputs": []}


def write_shards(table: pa.Table, folder: Path, shard_rows: int, row_group_rows: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    shards = []
    for i, start in enumerate(range(0, table.num_rows, shard_rows)):
        path = folder / f"part-{i:05d}.zstd.parquet"
        pq.write_table(table.slice(start, shard_rows), path, compression="zstd", row_group_size=row_group_rows)
        shards.append(path)
    return shards


def publish_run(table_path: Path, rows: pa.Table, run_id: str, *, stages: Sequence[str] = ALL_STAGES,
                mode: str = "append", shard_rows: int = 1000, row_group_rows: int = 250) -> dict:
    """Write `rows` as one run's shards, commit them as a new version, store the report; returns the report."""
    shards = write_shards(rows, publish.data_dir(table_path, run_id), shard_rows, row_group_rows)
    report = report_for(run_id, rows.num_rows, stages) | {"mode": mode, "shards": len(shards)}
    meta = {k: report[k] for k in ("run_id", "config_hash", "code_version", "input_records", "rejected",
                                   "output_records", "inputs", "stages")}
    report["version"] = publish.commit_shards(table_path, shards, rows.schema, meta, mode=mode)
    publish.write_report(table_path, run_id, report)
    return report


def with_values(table: pa.Table, column: str, rows: dict[int, object]) -> pa.Table:
    """`table` with the given rows of `column` set to other values."""
    values = table.column(column).to_pylist()
    for i, v in rows.items():
        values[i] = v
    return table.set_column(table.column_names.index(column), column, pa.array(values, table.schema.field(column).type))


def dirty_run(folder: Path) -> tuple[pa.Table, list[Path], dict]:
    """300 curated rows in 3 shards of 100 that fail six expectations, with duplicates within a shard and across
    shards: rows, shards, report. For the gate in slices of 100 rows."""
    rows = curated_rows(300, seed=2)
    rows = with_values(rows, "lang", {3: "xx", 140: "zz"})
    rows = with_values(rows, "toxicity", {207: 0.93})
    rows = with_values(rows, "text", {11: "mail bob.example@example.com now", 212: "hi @somebody_real"})
    rows = with_values(rows, "dedupe_hash", {20: rows.column("dedupe_hash")[21].as_py(),  # in one shard
                                             250: rows.column("dedupe_hash")[5].as_py()})  # in the first and last
    rows = with_values(rows, "id", {160: rows.column("id")[60].as_py(), 30: "12e5"})
    shards = write_shards(rows, folder / "data" / "run", 100, 50)
    return rows, shards, report_for("run", rows.num_rows, ALL_STAGES)


def verdicts(result) -> dict:
    """A gate result's failures by (expectation, column): count, example ids and examples, in any order (a bucket
    lists its duplicates by value, a frame by row)."""
    return {(f["expectation"], f["column"]): (f["unexpected_count"], sorted(f["example_ids"]),
                                             sorted(map(str, f["observed"].get("examples", []))))
            for f in result.failures}


def forbid_slices_here(monkeypatch) -> None:
    """From here on, this process cannot build a slice's frame nor spread or read a bucket: a gate that passes
    checked its slices in other processes (workers start without this process's patches)."""
    from expectations import frames

    def here(*args, **kwargs):
        raise AssertionError("a slice of the rows was checked in the driver")
    for name in ("rows_frame", "spread_buckets", "bucket_frame"):
        monkeypatch.setattr(frames, name, here)
