"""Twitter API v2 tweet objects: the elements of a response page's `data`, or one tweet per line ("flat" files)."""

from __future__ import annotations

import pyarrow as pa

from transforms.readers.fields import count, first, get, referenced
from transforms.readers.records import Kind
from transforms.readers.timestamps import parse_timestamps

METRICS = ("retweet_count", "reply_count", "like_count", "quote_count")

RAW = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("note_tweet", pa.struct([("text", pa.string())])),  # long-form posts: the full text
        ("created_at", pa.string()),
        ("author_id", pa.string()),
        ("conversation_id", pa.string()),
        ("lang", pa.string()),
        ("referenced_tweets", pa.list_(pa.struct([("type", pa.string()), ("id", pa.string())]))),
        ("public_metrics", pa.struct([(m, pa.int64()) for m in METRICS])),
    ]
)


def to_canonical(raw: pa.Table, _options=None) -> dict:
    refs = referenced(get(raw, "referenced_tweets"), ("replied_to", "retweeted", "quoted"))
    created = get(raw, "created_at")
    return {
        "id": get(raw, "id"),
        "text": first(get(raw, "note_tweet", "text"), get(raw, "text")),
        "created_at": None if created is None else parse_timestamps(created),
        "author_id": get(raw, "author_id"),
        "conversation_id": get(raw, "conversation_id"),
        "lang_hint": get(raw, "lang"),
        "in_reply_to_id": refs["replied_to"],
        "retweet_of_id": refs["retweeted"],
        "quote_of_id": refs["quoted"],
        **{m: count(get(raw, "public_metrics", m)) for m in METRICS},
    }


KIND = Kind("v2", RAW, to_canonical)
