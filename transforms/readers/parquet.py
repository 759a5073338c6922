"""Parquet files: row batches of the columns the column map finds, mapped like any flat record."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from transforms.readers import tabular
from transforms.readers.base import Part, excerpt, one_reject, reject_table
from transforms.readers.records import canonical, good_rows
from transforms.schema import TWEET_SCHEMA


_ERRORS = (pa.ArrowException, OSError, ValueError)


def read_parquet(source, source_file: str, options, row_groups: range | None = None, first: int = 1) -> Iterator[Part]:
    """`source` is a seekable file object (or the whole decompressed file as bytes); `row_groups`: only these, whose
    first row is line `first` (a piece of the file, readers/pieces.py). A file whose footer cannot be read is one
    reject; so is a damaged row group, for its unread rows, and the groups after it are read: damage costs only its
    group, whichever groups a piece holds."""
    try:
        parquet = pq.ParquetFile(io.BytesIO(source) if isinstance(source, bytes) else source)
        columns = sorted(set(tabular.resolve(parquet.schema_arrow.names, options.csv_columns).values()))
        batch_rows = _rows_per_batch(parquet, options.batch_bytes)
    except _ERRORS as e:
        yield Part(TWEET_SCHEMA.empty_table(), one_reject(source_file, first, f"unreadable Parquet data: {e}"), 0)
        return
    groups = list(range(parquet.metadata.num_row_groups) if row_groups is None else row_groups)
    while groups:
        done = 0  # rows of `groups` read
        try:  # batches span row groups: a few large batches, not one or more per group
            for batch in parquet.iter_batches(batch_size=batch_rows, row_groups=groups, columns=columns):
                table = pa.Table.from_batches([batch])
                yield _part(table, source_file, options, first + done)
                done += table.num_rows
            return
        except _ERRORS:
            pass
        # A batch failed: the group it stopped in is read alone, which says whether it is the damaged one.
        ends = np.cumsum([parquet.metadata.row_group(g).num_rows for g in groups])
        k = min(int(np.searchsorted(ends, done, side="right")), len(groups) - 1)
        skip = done - int(ends[k]) + parquet.metadata.row_group(groups[k]).num_rows
        yield from _one_group(parquet, groups[k], columns, batch_rows, skip, first + done, source_file, options)
        first, groups = first + int(ends[k]), groups[k + 1 :]


def _one_group(parquet, group: int, columns, batch_rows: int, skip: int, first: int, source_file: str, options):
    """Row group `group` but its first `skip` rows (already read), from line `first`; one reject if it is damaged."""
    read = 0
    try:
        for batch in parquet.iter_batches(batch_size=batch_rows, row_groups=[group], columns=columns):
            table = pa.Table.from_batches([batch]).slice(max(skip - read, 0))
            read += batch.num_rows
            if table.num_rows:
                yield _part(table, source_file, options, first)
                first += table.num_rows
    except _ERRORS as e:
        lost = parquet.metadata.row_group(group).num_rows - max(read, skip)
        why = f"unreadable Parquet data in row group {group}: {e}; its {lost} unread rows are lost"
        yield Part(TWEET_SCHEMA.empty_table(), one_reject(source_file, first, why), 0)


def _part(table: pa.Table, source_file: str, options, first: int) -> Part:
    lines = np.arange(first, first + table.num_rows, dtype=np.int64)
    indexes = np.zeros(table.num_rows, dtype=np.int32)
    text_table, not_utf8 = _binary_as_text(table)
    rows, reasons = canonical(tabular.PARQUET, text_table, options, source_file, lines, indexes)
    if not_utf8 is not None:
        reasons = pc.coalesce(not_utf8, reasons)
    bad = pc.is_valid(reasons)
    rejects = reject_table(
        source_file,
        rows.column("source_line").filter(bad),
        reasons.filter(bad),
        [excerpt(orjson.dumps(r, default=str)) for r in table.filter(bad).to_pylist()],
    )
    return Part(good_rows(rows, reasons), rejects, table.nbytes)


def _binary_as_text(table: pa.Table) -> tuple[pa.Table, pa.Array | None]:
    """Binary columns read as UTF-8 text. A value that is not UTF-8 becomes null and its row gets a reason (null
    elsewhere); the per-value check runs only for a column whose cast failed."""
    reasons = None
    for i, field in enumerate(table.schema):
        if not (pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type)):
            continue
        values = table.column(i)
        try:
            text = values.cast(pa.string())
        except pa.ArrowInvalid:
            decoded = [_utf8(v) for v in values.to_pylist()]
            text = pa.array(decoded, pa.string())
            broken = pc.and_(pc.is_null(text), values.combine_chunks().is_valid())
            reason = pc.if_else(broken, f"column {field.name!r} is not valid UTF-8", pa.scalar(None, pa.string()))
            reasons = reason if reasons is None else pc.coalesce(reasons, reason)
        table = table.set_column(i, pa.field(field.name, pa.string()), text)
    return table, reasons


def _utf8(value: bytes | None) -> str | None:
    try:
        return None if value is None else value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _rows_per_batch(parquet: pq.ParquetFile, batch_bytes: int) -> int:
    """Rows that make about `batch_bytes` of uncompressed data, from the file's own statistics."""
    meta = parquet.metadata
    if not meta.num_rows:
        return 1
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return max(1, int(batch_bytes * meta.num_rows / max(size, 1)))
