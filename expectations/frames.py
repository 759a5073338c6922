"""The check frames the suites run on: small pandas frames built with polars, never holding tweet text.

- rows: one row per tweet, only the columns the applicable expectations use; text appears only through derived
  columns (text_length, residual_pii), so no validation result or Data Docs page can show a tweet. A large run is
  checked in slices of rows, its uniqueness in hash buckets of one column (expectations/gate.py).
- schema: one row per published column ("name", and "field" = "name: type").
- shards: one row per Parquet shard, from its footer (rows, bytes, row groups, a schema fingerprint).
- funnel: one row per stage of each run report, plus a "publish" row, for the count reconciliation.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.ipc  # noqa: F401  (pa.ipc)
import pyarrow.parquet as pq

from expectations.parameters import field_names
from expectations.residual_pii import residual_pii
from transforms.engines.staging import PART_SUFFIX

Source = Path | pa.Table


def _derived(params: dict[str, Any]) -> dict[str, tuple[str, Callable[[], pl.Expr]]]:
    """Derived column -> (the column it needs, its expression)."""
    return {
        "text_length": ("text", lambda: pl.col("text").str.len_chars().cast(pl.Int64)),
        "residual_pii": (
            "text",
            lambda: pl.col("text").map_batches(
                lambda s: residual_pii(s, params["phone_regions"]), return_dtype=pl.String
            ),
        ),
        # Float64, as the langid stage compares: its float32 scores widen exactly, so float32(0.65) < 0.65.
        "lang_min_score": (
            "lang",
            lambda: pl.col("lang").replace_strict(
                params["lang_thresholds"], default=params["lang_min_score"], return_dtype=pl.Float64
            ),
        ),
    }


def _scan(sources: Sequence[Source]) -> pl.LazyFrame:
    """Arrow tables, working parts (Arrow IPC files: the ingested rows) or Parquet shards."""
    if sources and all(isinstance(s, pa.Table) for s in sources):
        return pl.concat([pl.from_arrow(t).lazy() for t in sources], how="diagonal_relaxed")
    if sources and all(Path(s).suffix == PART_SUFFIX for s in sources):
        return pl.scan_ipc([str(s) for s in sources])
    return pl.scan_parquet([str(s) for s in sources])


def rows_frame(sources: Sequence[Source], columns: set[str], params: dict[str, Any]) -> pd.DataFrame:
    """The `columns` the expectations use, read from Parquet shards or Arrow tables; missing ones are left out
    (their expectations then fail, naming the column)."""
    if not sources:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in sorted(columns)})
    frame = _scan(sources)
    present = set(frame.collect_schema().names())
    derived = _derived(params)
    exprs = []
    for name in sorted(columns):
        if name in derived and derived[name][0] in present:
            exprs.append(derived[name][1]().alias(name))
        elif name in present:
            exprs.append(pl.col(name))
    frame = frame.select(exprs).collect()
    # float64 holds every float32 exactly, and GX compares float64 columns vectorized (float32 goes row by row).
    return frame.with_columns(pl.selectors.float().cast(pl.Float64)).to_pandas()


def source_rows(source: Source) -> int:
    """A source's rows, from its footer."""
    if isinstance(source, pa.Table):
        return source.num_rows
    if Path(source).suffix == PART_SUFFIX:
        return _scan([source]).select(pl.len()).collect().item()
    return pq.read_metadata(source).num_rows


def source_schema(source: Source) -> pa.Schema:
    """A source's schema, from its footer."""
    if isinstance(source, pa.Table):
        return source.schema
    if Path(source).suffix == PART_SUFFIX:
        with pa.memory_map(str(source)) as file:
            return pa.ipc.open_file(file).schema
    return pq.read_schema(source)


def has_columns(sources: Sequence[Source], names: Sequence[str]) -> bool:
    present = _scan(sources[:1]).collect_schema().names()
    return all(name in present for name in names)


def row_slices(sources: Sequence[Source], sizes: Sequence[int], rows: int) -> list[list[Source]]:
    """Consecutive sources (of `sizes` rows each) grouped into slices of at most `rows` rows (a larger source is a
    slice of its own): the rows frame of one slice is what the gate holds at once."""
    slices: list[list[Source]] = []
    held = 0
    for source, n in zip(sources, sizes):
        if not slices or (slices[-1] and held + n > rows):
            slices.append([])
            held = 0
        slices[-1].append(source)
        held += n
    return slices


def count_frame(rows: int) -> pd.DataFrame:
    """A frame of `rows` rows and no column (nothing held): what a row-count expectation needs of a large run."""
    return pd.DataFrame(index=pd.RangeIndex(rows))


def spread_buckets(sources: Sequence[Source], index: int, column: str, buckets: int, folder: Path) -> None:
    """`column` (with each row's id) of one slice of the rows, spread over `buckets` subfolders of `folder` by the
    value's hash, so that equal values meet in one bucket of ~1/buckets of the rows, whichever slice holds them:
    uniqueness checked in bounded memory. Nulls (never duplicates of anything) are dealt out by row, so that a
    column of nulls does not gather in one bucket. The slice's files are named by its `index`."""
    names = sorted({column, "id"})
    of_row = pl.when(pl.col(column).is_null()).then(pl.int_range(pl.len(), dtype=pl.UInt64) % buckets).otherwise(
        pl.col(column).hash(seed=0) % buckets)
    frame = _scan(sources).select(names).with_columns(bucket=of_row).collect()
    for (bucket,), part in frame.partition_by("bucket", as_dict=True).items():
        (folder / str(bucket)).mkdir(parents=True, exist_ok=True)
        part.drop("bucket").write_parquet(folder / str(bucket) / f"{index}.parquet")


def bucket_frame(folder: Path, bucket: int, column: str) -> pd.DataFrame:
    """Every slice's rows of one bucket (spread_buckets); no row where none fell into it."""
    files = sorted((folder / str(bucket)).glob("*.parquet"))
    if not files:
        return pd.DataFrame({name: pd.Series([], dtype=object) for name in sorted({column, "id"})})
    return pl.read_parquet(files).to_pandas()


def schema_frame(schema: pa.Schema) -> pd.DataFrame:
    return pd.DataFrame({"name": schema.names, "field": field_names(schema)})


def schema_fingerprint(schema: pa.Schema) -> str:
    return hashlib.sha256("\n".join(field_names(schema)).encode()).hexdigest()[:12]


def shards_frame(shards: Sequence[Path]) -> pd.DataFrame:
    rows = []
    for shard in shards:
        meta = pq.read_metadata(shard)
        groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        rows.append(
            {
                "shard": f"{shard.parent.name}/{shard.name}",
                "rows": meta.num_rows,
                "file_bytes": shard.stat().st_size,
                "row_groups": meta.num_row_groups,
                "max_row_group_rows": max(groups, default=0),
                "schema": schema_fingerprint(meta.schema.to_arrow_schema()),
            }
        )
    columns = ["shard", "rows", "file_bytes", "row_groups", "max_row_group_rows", "schema"]
    return pd.DataFrame(rows, columns=columns)


def funnel_frame(reports: Sequence[dict]) -> pd.DataFrame:
    """Per run: each stage's counts and the count it should have read; a last "publish" row holds the published
    count as its output, so a report whose output_records disagrees with its last stage shows as unaccounted."""
    rows = []
    for report in reports:
        previous = report["input_records"] - report["rejected"]
        steps = [
            (s["name"], s["input"], s["output"], s["dropped"], sum(s.get("reasons", {}).values()))
            for s in report.get("stages", [])
        ]
        for name, rows_in, rows_out, dropped, reasons in steps:
            rows.append((report["run_id"], name, rows_in, previous, rows_out, dropped, reasons))
            previous = rows_out
        rows.append((report["run_id"], "publish", previous, previous, report["output_records"], 0, 0))
    frame = pd.DataFrame(
        rows, columns=["run_id", "step", "input", "expected_input", "output", "dropped", "reasons_total"]
    ).astype({c: "int64" for c in ("input", "expected_input", "output", "dropped", "reasons_total")})
    frame["step"] = frame["run_id"] + ":" + frame["step"]
    frame["unaccounted"] = frame["input"] - frame["output"] - frame["dropped"]
    return frame
