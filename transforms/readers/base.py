"""The readers' contract: options in, batches of canonical tweets plus rejects out, and the user-facing error."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import pyarrow as pa

from transforms.schema import EXCERPT_CHARS, LINEAGE_COLUMNS, REJECT_SCHEMA, TWEET_SCHEMA

FORMATS = ("v1.1", "v2", "archive", "activity", "csv", "tsv", "jsonl", "parquet")
# Canonical columns a column map may name (lineage is the reader's own).
MAPPABLE = tuple(f.name for f in TWEET_SCHEMA if f.name != "source_format" and f.name not in LINEAGE_COLUMNS)


class InputError(Exception):
    """A missing path / unreadable input given by the user: the CLI prints str(e) on one line and exits 2."""


@dataclass(frozen=True)
class ReaderOptions:
    # Force a format ("v1.1" | "v2" | "archive" | "activity" | "csv" | "tsv" | "jsonl" | "parquet"); None = detect.
    format: str | None = None
    # Canonical column -> CSV/Parquet/flat-JSON column name; unnamed columns fall back to common aliases.
    csv_columns: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Approximate uncompressed bytes per yielded batch: bounds memory.
    batch_bytes: int = 32 << 20
    # Spark and Beam read an uncompressed JSON-lines or Parquet file larger than this as pieces of about this size,
    # one task each (readers/pieces.py); the polars engine reads every file in order.
    piece_bytes: int = 256 << 20

    def __post_init__(self):
        if self.format is not None and self.format not in FORMATS:
            raise InputError(f"unknown input format {self.format!r} (known: {', '.join(FORMATS)})")
        if self.batch_bytes < 1:
            raise InputError(f"batch_bytes must be positive, got {self.batch_bytes}")
        if self.piece_bytes < 1:
            raise InputError(f"piece_bytes must be positive, got {self.piece_bytes}")
        unknown = sorted(set(self.csv_columns) - set(MAPPABLE))
        if unknown:
            raise InputError(f"csv_columns names unknown canonical column(s) {', '.join(unknown)}; "
                             f"known: {', '.join(MAPPABLE)}")


@dataclass
class ReadBatch:
    tweets: pa.Table  # exactly TWEET_SCHEMA
    rejects: pa.Table  # exactly REJECT_SCHEMA
    # invariant: records consumed = tweets.num_rows + rejects.num_rows


@dataclass
class Part:
    """What a format reader returns for one slice of one file; `nbytes` (uncompressed input) drives batching."""

    tweets: pa.Table
    rejects: pa.Table
    nbytes: int


def excerpt(raw: bytes | str | None) -> str:
    """The start of an offending input, bounded, never failing on bad bytes."""
    if raw is None:
        return ""
    if isinstance(raw, bytes):
        raw = raw[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    return raw[:EXCERPT_CHARS]


def reject_table(source_file: str, lines, reasons, excerpts) -> pa.Table:
    """Rejects for one file; `lines`, `reasons` and `excerpts` are parallel sequences or Arrow arrays."""
    n = len(lines)
    return pa.Table.from_arrays(
        [
            pa.repeat(pa.scalar(source_file, pa.string()), n),
            _array(np.asarray(lines, dtype=np.int64) if not isinstance(lines, pa.Array) else lines, pa.int64()),
            _array(reasons, pa.string()),
            _array(excerpts, pa.string()),
        ],
        schema=REJECT_SCHEMA,
    )


def _array(values, typ: pa.DataType) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks().cast(typ)
    if isinstance(values, pa.Array):
        return values.cast(typ)
    return pa.array(values, typ)


def one_reject(source_file: str, line: int, reason: str, raw: bytes | str | None = None) -> pa.Table:
    return reject_table(source_file, [line], [reason], [excerpt(raw)])


def empty_part(nbytes: int = 0) -> Part:
    return Part(TWEET_SCHEMA.empty_table(), REJECT_SCHEMA.empty_table(), nbytes)
