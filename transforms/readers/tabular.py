"""Flat records (CSV/TSV rows, Parquet rows, JSON lines of canonical-ish records): columns found by name.

`ReaderOptions.csv_columns` names a source column per canonical column; the rest are found among common aliases.
Header names are compared loosely ("Tweet ID", " tweet_id" and "tweet-id" are the same name).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import pyarrow as pa

from transforms.readers.fields import count, trimmed_id
from transforms.readers.records import IDS, Kind
from transforms.readers.timestamps import parse_timestamps

ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "id_str", "tweet_id", "tweetid", "status_id"),
    "text": ("text", "full_text", "tweet_text", "tweet", "content", "body"),
    "created_at": ("created_at", "date", "timestamp", "time", "datetime", "posted_time", "postedtime"),
    "author_id": ("author_id", "user_id", "user_id_str"),
    "conversation_id": ("conversation_id",),
    "lang_hint": ("lang_hint", "lang", "language"),
    "in_reply_to_id": ("in_reply_to_id", "in_reply_to_status_id_str", "in_reply_to_status_id"),
    "retweet_of_id": ("retweet_of_id", "retweeted_status_id", "retweet_id"),
    "quote_of_id": ("quote_of_id", "quoted_status_id_str", "quoted_status_id"),
    "retweet_count": ("retweet_count", "retweets"),
    "reply_count": ("reply_count", "replies"),
    "like_count": ("like_count", "favorite_count", "likes", "favorites"),
    "quote_count": ("quote_count", "quotes"),
}
COUNTS = ("retweet_count", "reply_count", "like_count", "quote_count")
# Keys that canonical-ish flat records use and API tweet objects never do (at the top level): a record with one of
# them is read as a flat record.
MARKERS = frozenset(
    ("tweet_id", "tweetid", "tweet_text", "status_id", "lang_hint", "in_reply_to_id", "retweet_of_id", "quote_of_id",
     "like_count", "user_id", "date", "language", "retweeted_status_id", "source_format")
)


def loose(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def resolve(names: Iterable[str], columns: Mapping[str, str]) -> dict[str, str]:
    """Canonical column -> source column, for the canonical columns the source has."""
    by_loose: dict[str, str] = {}
    for name in names:
        by_loose.setdefault(loose(name), name)
    found = {}
    for canonical, aliases in ALIASES.items():
        wanted = (columns[canonical],) if canonical in columns else aliases
        for alias in wanted:
            if alias in by_loose.values():
                found[canonical] = alias
                break
            if loose(alias) in by_loose:
                found[canonical] = by_loose[loose(alias)]
                break
    return found


def _text(values) -> pa.Array | pa.ChunkedArray | None:
    if pa.types.is_string(values.type):
        return values
    if pa.types.is_large_string(values.type) or pa.types.is_string_view(values.type):
        return values.cast(pa.string())
    if pa.types.is_struct(values.type) or pa.types.is_list(values.type) or pa.types.is_map(values.type):
        return None
    return values.cast(pa.string())


def to_canonical(raw: pa.Table, options) -> dict:
    found = resolve(raw.column_names, options.csv_columns)
    out: dict = {}
    for canonical, source in found.items():
        values = raw.column(source)
        if canonical in COUNTS:
            out[canonical] = count(_text(values) if pa.types.is_boolean(values.type) else values)
        elif canonical == "created_at":
            text = values if pa.types.is_timestamp(values.type) else _text(values)
            out[canonical] = None if text is None else parse_timestamps(text)
        else:
            text = _text(values)
            out[canonical] = trimmed_id(text) if canonical in IDS and text is not None else text
    return out


def _column(values: list) -> pa.Array:
    """Infer a column's type the way pyarrow's JSON reader does; a column of mixed types becomes strings."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([_string(v) for v in values], pa.string())


def _string(value) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def records_table(records: list[dict]) -> pa.Table:
    """Slow path for flat JSON records: one column per key, typed as the fast path's inference would type it."""
    keys: dict[str, None] = {}
    for record in records:
        keys.update(dict.fromkeys(record))
    if not keys:  # records without any field still count as rows
        return pa.table({"": pa.nulls(len(records))})
    return pa.table({k: _column([r.get(k) for r in records]) for k in keys})


FLAT = Kind("jsonl", None, to_canonical, from_records=records_table)
CSV = Kind("csv", None, to_canonical)
TSV = Kind("tsv", None, to_canonical)
PARQUET = Kind("parquet", None, to_canonical)
