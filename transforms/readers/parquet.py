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


def read_parquet(source, source_file: str, options) -> Iterator[Part]:
    """`source` is a seekable file object (or the whole decompressed file as bytes). A file that cannot be read
    (from the start, or from a damaged row group on) is one reject; the rows before the damage are kept."""
    first = 1
    try:
        parquet = pq.ParquetFile(io.BytesIO(source) if isinstance(source, bytes) else source)
        columns = sorted(set(tabular.resolve(parquet.schema_arrow.names, options.csv_columns).values()))
        for batch in parquet.iter_batches(batch_size=_rows_per_batch(parquet, options.batch_bytes), columns=columns):
            table = pa.Table.from_batches([batch])
            yield _part(table, source_file, options, first)
            first += table.num_rows
    except (pa.ArrowException, OSError, ValueError) as e:
        yield Part(TWEET_SCHEMA.empty_table(), one_reject(source_file, first, f"unreadable Parquet data: {e}"), 0)


def _part(table: pa.Table, source_file: str, options, first: int) -> Part:
    lines = np.arange(first, first + table.num_rows, dtype=np.int64)
    indexes = np.zeros(table.num_rows, dtype=np.int32)
    rows, reasons = canonical(tabular.PARQUET, table, options, source_file, lines, indexes)
    bad = pc.is_valid(reasons)
    rejects = reject_table(
        source_file,
        rows.column("source_line").filter(bad),
        reasons.filter(bad),
        [excerpt(orjson.dumps(r, default=str)) for r in table.filter(bad).to_pylist()],
    )
    return Part(good_rows(rows, reasons), rejects, table.nbytes)


def _rows_per_batch(parquet: pq.ParquetFile, batch_bytes: int) -> int:
    """Rows that make about `batch_bytes` of uncompressed data, from the file's own statistics."""
    meta = parquet.metadata
    if not meta.num_rows:
        return 1
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return max(1, int(batch_bytes * meta.num_rows / max(size, 1)))
