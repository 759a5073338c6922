"""Vectorized field access and type mending shared by the per-format mappers.

Raw tables come from two places (pyarrow's JSON reader, or records coerced in Python on the slow path), may be
chunked, and may lack any optional field; these helpers take all of that in stride.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Column = pa.Array | pa.ChunkedArray


def get(table: pa.Table, *path: str) -> Column | None:
    """table[path[0]][path[1]]...; None when any step is absent."""
    if path[0] not in table.column_names:
        return None
    values = table.column(path[0])
    for name in path[1:]:
        if not pa.types.is_struct(values.type) or values.type.get_field_index(name) < 0:
            return None
        values = pc.struct_field(values, name)
    return values


def first(*columns: Column | None) -> Column | None:
    """Element-wise first non-null value among the columns that exist."""
    present = [c for c in columns if c is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else pc.coalesce(*present)


def id_string(values: Column | None) -> Column | None:
    """Ids as decimal strings: integers are printed; strings pass as they are (validation checks the digits)."""
    if values is None or pa.types.is_string(values.type):
        return values
    return pc.cast(values, pa.string())


def canonical_id(values: Column) -> Column:
    """Decimal ids without leading zeros ("0042" -> "42", "000" -> "0"): the stages compare ids as uint64, so one
    tweet must have one spelling. Other strings pass as they are (validation judges them)."""
    if not pc.any(pc.starts_with(values, "0")).as_py():  # the common case, decided by one cheap pass
        return values
    stripped = pc.utf8_ltrim(values, "0")
    stripped = pc.if_else(pc.equal(stripped, ""), "0", stripped)
    return pc.if_else(pc.fill_null(pc.ascii_is_decimal(values), False), stripped, values)


def trimmed_id(values: Column | None) -> Column | None:
    """Spreadsheet-style ids ('123', "123", surrounding spaces) -> 123."""
    values = id_string(values)
    if values is None:
        return None
    return pc.utf8_trim(values, characters=" \t'\"")


_INT64_MAX = 2**63 - 1


def count(values: Column | None) -> Column | None:
    """Counts as int64: integers pass, digit strings are read, anything else (e.g. "100+") becomes null."""
    if values is None or pa.types.is_int64(values.type):
        return values
    if pa.types.is_integer(values.type):
        if pa.types.is_uint64(values.type):  # the one integer type that may not fit
            values = pc.if_else(pc.less_equal(values, pa.scalar(_INT64_MAX, pa.uint64())), values, pa.scalar(None, values.type))
        return pc.cast(values, pa.int64())
    if pa.types.is_floating(values.type):
        # Whole and inside int64 (1e30, inf and NaN are not counts: null, as "100+" is).
        usable = pc.and_(pc.equal(pc.floor(values), values), pc.less(pc.abs(values), 2.0**63))
        return pc.cast(pc.if_else(usable, values, pa.scalar(None, values.type)), pa.int64())
    text = pc.utf8_trim_whitespace(pc.cast(values, pa.string()))
    usable = pc.and_(pc.ascii_is_decimal(text), pc.less_equal(pc.utf8_length(text), 18))
    return pc.cast(pc.if_else(usable, text, pa.scalar(None, pa.string())), pa.int64())


def last_segment(values: Column | None, separator: str) -> Column | None:
    """'tag:search.twitter.com,2005:123' -> '123' (separator ':'), 'http://twitter.com/u/statuses/9' -> '9' ('/')."""
    if values is None:
        return None
    return pc.replace_substring_regex(id_string(values), f"^.*{separator}", "")


def referenced(refs: Column | None, kinds: tuple[str, ...]) -> dict[str, pa.Array | None]:
    """From a list<struct<type, id>> column: per kind, the id of each row's first reference of that kind."""
    if refs is None:
        return dict.fromkeys(kinds)
    if isinstance(refs, pa.ChunkedArray):
        refs = refs.combine_chunks()
    flat = pc.list_flatten(refs)
    parents = pc.list_parent_indices(refs).to_numpy()
    types = pc.struct_field(flat, "type")
    ids = id_string(pc.struct_field(flat, "id"))
    out = {}
    for kind in kinds:
        hits = np.flatnonzero(pc.fill_null(pc.equal(types, kind), False).to_numpy(False))
        rows = parents[hits]  # non-decreasing: flattened values keep their rows' order
        keep = np.ones(len(hits), dtype=bool)
        keep[1:] = rows[1:] != rows[:-1]
        where = np.full(len(refs), -1, dtype=np.int64)
        where[rows[keep]] = hits[keep]
        out[kind] = pc.take(ids, pa.array(where, mask=where < 0))
    return out
