"""The canonical Arrow schemas, in one place: every reader produces TWEET_SCHEMA, every engine writes it."""

from __future__ import annotations

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")

TWEET_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # decimal digits without leading zeros, never a float
        pa.field("text", pa.string(), nullable=False),
        pa.field("created_at", TIMESTAMP),
        pa.field("author_id", pa.string()),
        pa.field("conversation_id", pa.string()),
        pa.field("lang_hint", pa.string()),  # the platform's own language tag, if any
        pa.field("in_reply_to_id", pa.string()),
        pa.field("retweet_of_id", pa.string()),
        pa.field("quote_of_id", pa.string()),
        pa.field("retweet_count", pa.int64()),
        pa.field("reply_count", pa.int64()),
        pa.field("like_count", pa.int64()),
        pa.field("quote_count", pa.int64()),
        pa.field("source_format", pa.string()),  # reader that produced the row, e.g. "v2", "v1.1", "archive"
        pa.field("source_file", pa.string()),
        pa.field("source_line", pa.int64()),  # 1-based line where the record starts
        pa.field("source_index", pa.int32()),  # position of the record within that line/document
    ]
)

REJECT_SCHEMA = pa.schema(
    [
        pa.field("source_file", pa.string()),
        pa.field("source_line", pa.int64()),
        pa.field("reason", pa.string()),
        pa.field("excerpt", pa.string()),  # bounded, see EXCERPT_CHARS
    ]
)

DROP_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("stage", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("dup_of", pa.string()),  # the kept representative, for dedupe stages
    ]
)

EXCERPT_CHARS = 200
LINEAGE_COLUMNS = ("source_file", "source_line", "source_index")


def empty_tweets() -> pa.Table:
    return TWEET_SCHEMA.empty_table()


def empty_rejects() -> pa.Table:
    return REJECT_SCHEMA.empty_table()


def conform(table: pa.Table, schema: pa.Schema = TWEET_SCHEMA) -> pa.Table:
    """Select and cast the schema's columns in order, adding missing ones as nulls."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema.remove_metadata()).cast(schema)
