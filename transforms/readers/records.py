"""Record kinds, and the one road from raw records to canonical rows that the fast and slow paths share.

A kind names the fields to parse (`raw`) and one vectorized mapper from those fields to canonical columns. The fast
path gets its raw table from pyarrow's JSON reader; the slow path coerces Python records to the same raw types
(`coerce`), so both end in the same mapper and the same validation, and a record's outcome never depends on the
path it took.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from transforms.readers.base import excerpt, reject_table
from transforms.readers.fields import canonical_id
from transforms.schema import REJECT_SCHEMA, TWEET_SCHEMA, conform

_INT64 = (-(1 << 63), (1 << 63) - 1)

# Top-level fields that mark the direct messages which have an id and a text like a tweet (v2 DM events, legacy
# v1.1 DMs). The fast path parses them as strings and hands any row that has one to the slow path, which rejects it
# as a DM. Few on purpose: every field in the reader's schema costs parse time.
GUARDS = ("event_type", "sender_screen_name")
IDS = ("id", "author_id", "conversation_id", "in_reply_to_id", "retweet_of_id", "quote_of_id")


@dataclass(frozen=True, eq=False)
class Kind:
    """A kind of tweet record (v1.1, v2, activity, archive, flat): what to parse and how to map it."""

    label: str  # the rows' source_format
    raw: pa.Schema | None  # fields parsed from each record; None: the record's own columns (flat records)
    mapper: Callable[..., dict]  # (raw table, ReaderOptions) -> canonical column name -> array or None
    from_records: Callable[[list], pa.Table] | None = None  # slow path for kinds without a raw schema

    @property
    def parse_schema(self) -> pa.Schema | None:
        if self.raw is None:
            return None
        extra = [pa.field(g, pa.string()) for g in GUARDS if self.raw.get_field_index(g) < 0]
        return pa.schema(list(self.raw) + extra)

    def table(self, records: Sequence[dict]) -> pa.Table:
        """Slow path: Python records -> the raw table the fast path would have parsed."""
        if self.from_records is not None:
            return self.from_records(list(records))
        struct = pa.struct(list(self.raw))
        return pa.Table.from_struct_array(pa.array([coerce(r, struct) for r in records], type=struct))


def coerce(value, typ: pa.DataType):
    """Reshape one JSON value to an Arrow type the way a lenient reader would: only the type's fields are kept,
    numbers and digit strings are exchanged where the type asks for the other, and what cannot fit becomes null."""
    if value is None:
        return None
    if pa.types.is_struct(typ):
        if not isinstance(value, dict):
            return None
        return {f.name: coerce(value.get(f.name), f.type) for f in typ}
    if pa.types.is_list(typ):
        if not isinstance(value, list):
            return None
        return [coerce(v, typ.value_type) for v in value]
    if pa.types.is_string(typ):
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return None
    if pa.types.is_integer(typ):
        if isinstance(value, bool):
            return None
        if isinstance(value, float):
            value = int(value) if value.is_integer() else None
        elif isinstance(value, str):
            text = value.strip()
            digits = text[1:] if text.startswith("-") else text
            value = int(text) if digits.isascii() and digits.isdigit() else None
        if isinstance(value, int) and _INT64[0] <= value <= _INT64[1]:
            return value
        return None
    if pa.types.is_boolean(typ):
        return value if isinstance(value, bool) else None
    return None


_ID_MAX = str(2**64 - 1)
_ID_DIGITS = len(_ID_MAX)


def problems(columns: dict, n: int) -> pa.Array:
    """Per row: null when the record is a usable tweet, else why not. Decimal ids come without leading zeros."""
    ids = columns.get("id", pa.nulls(n, pa.string()))
    text = columns.get("text", pa.nulls(n, pa.string()))
    no_text = pc.fill_null(pc.equal(pc.binary_length(text), 0), True)  # lengths come from offsets alone
    bad_id = pc.invert(pc.fill_null(pc.ascii_is_decimal(ids), True))
    # Ids are 64-bit numbers (the stages order and pair rows by them): longer decimals cannot be tweet ids.
    width = pc.binary_length(ids)
    too_big = pc.or_(pc.greater(width, _ID_DIGITS), pc.and_(pc.equal(width, _ID_DIGITS), pc.greater(ids, _ID_MAX)))
    reason = pc.if_else(no_text, "record has no text", pa.scalar(None, pa.string()))
    reason = pc.if_else(pc.and_(pc.invert(bad_id), pc.fill_null(too_big, False)),
                        f"record id is above the 64-bit range ({_ID_MAX})", reason)
    reason = pc.if_else(bad_id, "record id is not a decimal number", reason)
    # Spreadsheets turn 19-digit ids into floats such as 1.23457E+18: the digits are lost, so say why.
    rounded = pc.fill_null(pc.match_substring_regex(ids, r"^\s*\d(\.\d+)?[eE]\+?\d+\s*$"), False)
    reason = pc.if_else(rounded, "record id is in scientific notation (a spreadsheet rounded it: export ids as text)",
                        reason)
    return pc.if_else(pc.is_null(ids), "record has no id", reason)


# What a mapper raises on a value it did not expect (Arrow's cast and compute errors are ValueErrors too).
MAPPING_ERRORS = (pa.ArrowException, ValueError, TypeError, OverflowError)
_LOOSE = pa.schema([field.with_nullable(True) for field in TWEET_SCHEMA])  # rows before validation may lack an id


def canonical(kind: Kind, raw: pa.Table, options, source_file: str, lines, indexes) -> tuple[pa.Table, pa.Array]:
    """Map raw records to canonical columns with lineage, ids in one spelling (`canonical_id`); returns (rows,
    reasons), reasons null for good rows.

    A value no mapper expected costs only its own record: the batch is then mapped record by record, and that
    record gets the error as its reason."""
    try:
        return _canonical(kind, raw, options, source_file, lines, indexes)
    except MAPPING_ERRORS as e:
        lines, indexes = np.asarray(lines, dtype=np.int64), np.asarray(indexes, dtype=np.int32)
        if raw.num_rows == 1:
            row = {f.name: [None] for f in TWEET_SCHEMA} | {
                "source_file": [source_file], "source_line": lines, "source_index": indexes}
            return pa.table(row, schema=_LOOSE), pa.array([f"unreadable record: {e}"[:300]], pa.string())
        pieces = [canonical(kind, raw.slice(i, 1), options, source_file, lines[i:i + 1], indexes[i:i + 1])
                  for i in range(raw.num_rows)]
        return (pa.concat_tables([conform(rows, _LOOSE) for rows, _ in pieces]),
                pa.chunked_array([chunk for _, reasons in pieces for chunk in _chunks(reasons)], pa.string()))


def _chunks(values: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return values.chunks if isinstance(values, pa.ChunkedArray) else [values]


def _canonical(kind: Kind, raw: pa.Table, options, source_file: str, lines, indexes) -> tuple[pa.Table, pa.Array]:
    n = raw.num_rows
    columns = {k: v for k, v in kind.mapper(raw, options).items() if v is not None}
    columns |= {k: canonical_id(columns[k]) for k in IDS if k in columns}
    columns["source_format"] = pa.repeat(pa.scalar(kind.label, pa.string()), n)
    columns["source_file"] = pa.repeat(pa.scalar(source_file, pa.string()), n)
    columns["source_line"] = pa.array(np.asarray(lines, dtype=np.int64))
    columns["source_index"] = pa.array(np.asarray(indexes, dtype=np.int32))
    reasons = problems(columns, n)
    return pa.table(columns), reasons


def good_rows(rows: pa.Table, reasons: pa.Array) -> pa.Table:
    if reasons.null_count == len(reasons):
        return conform(rows)
    return conform(rows.filter(pc.is_null(reasons)))


def map_records(kind: Kind, records: list, options, source_file: str, lines, indexes) -> tuple[pa.Table, pa.Table]:
    """Slow path: Python records of one kind -> (canonical tweets, rejects with the record as excerpt)."""
    rows, reasons = canonical(kind, kind.table(records), options, source_file, lines, indexes)
    bad = np.flatnonzero(pc.is_valid(reasons).to_numpy(False))
    rejects = reject_table(
        source_file,
        np.asarray(lines, dtype=np.int64)[bad],
        reasons.take(pa.array(bad, pa.int64())),
        [excerpt(orjson.dumps(records[i])) for i in bad],
    )
    return good_rows(rows, reasons), rejects


def map_all(records: list, rejects: list, options, source_file: str) -> tuple[pa.Table, pa.Table]:
    """Slow path for a mixed bag: `records` are (line, index, kind, record), `rejects` are (line, reason, excerpt).

    Records are mapped per kind; the results come back in input order (by line, then index)."""
    by_kind: dict[Kind, list] = {}
    for item in records:
        by_kind.setdefault(item[2], []).append(item)
    tweets, bad = [], [reject_table(source_file, *zip(*rejects))] if rejects else []
    for kind, items in by_kind.items():
        lines, indexes, _, raws = zip(*items)
        good, rejected = map_records(kind, list(raws), options, source_file, lines, indexes)
        tweets.append(good)
        bad.append(rejected)
    tweets_table = pa.concat_tables(tweets) if tweets else TWEET_SCHEMA.empty_table()
    rejects_table = pa.concat_tables(bad) if bad else REJECT_SCHEMA.empty_table()
    if len(by_kind) > 1:
        tweets_table = tweets_table.sort_by([("source_line", "ascending"), ("source_index", "ascending")])
    if len(bad) > 1:
        rejects_table = rejects_table.sort_by([("source_line", "ascending")])
    return tweets_table, rejects_table
