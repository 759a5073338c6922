"""Twitter API v1.1 tweet objects (REST, streaming, Gnip "original format"; account archives reuse the mapping).

Only the fields below are ever parsed, so user objects, profiles and geo never leave the raw bytes.
"""

from __future__ import annotations

import pyarrow as pa

from transforms.readers.fields import count, first, get, id_string
from transforms.readers.records import Kind
from transforms.readers.timestamps import V1_FORMAT, parse_timestamps

_REF = pa.struct([("id", pa.int64()), ("id_str", pa.string())])

RAW = pa.schema(
    [
        ("id", pa.int64()),
        ("id_str", pa.string()),
        ("text", pa.string()),
        ("full_text", pa.string()),
        ("extended_tweet", pa.struct([("full_text", pa.string())])),
        ("created_at", pa.string()),
        ("user", _REF),
        ("lang", pa.string()),
        ("conversation_id", pa.int64()),
        ("conversation_id_str", pa.string()),
        ("in_reply_to_status_id", pa.int64()),
        ("in_reply_to_status_id_str", pa.string()),
        ("retweeted_status", _REF),
        ("quoted_status_id", pa.int64()),
        ("quoted_status_id_str", pa.string()),
        ("quoted_status", _REF),
        ("retweet_count", pa.int64()),
        ("favorite_count", pa.int64()),
        ("reply_count", pa.int64()),
        ("quote_count", pa.int64()),
    ]
)


def _ref(raw: pa.Table, *path: str):
    """An id given both ways: the *_str string wins over the float-prone number."""
    *parent, name = path
    return first(get(raw, *parent, f"{name}_str"), id_string(get(raw, *parent, name)))


def to_canonical(raw: pa.Table, _options=None) -> dict:
    return {
        "id": _ref(raw, "id"),
        "text": first(get(raw, "extended_tweet", "full_text"), get(raw, "full_text"), get(raw, "text")),
        "created_at": None if get(raw, "created_at") is None else parse_timestamps(raw["created_at"], V1_FORMAT),
        "author_id": _ref(raw, "user", "id"),
        "conversation_id": _ref(raw, "conversation_id"),
        "lang_hint": get(raw, "lang"),
        "in_reply_to_id": _ref(raw, "in_reply_to_status_id"),
        "retweet_of_id": _ref(raw, "retweeted_status", "id"),
        "quote_of_id": first(_ref(raw, "quoted_status_id"), _ref(raw, "quoted_status", "id")),
        "retweet_count": count(get(raw, "retweet_count")),
        "reply_count": count(get(raw, "reply_count")),
        "like_count": count(get(raw, "favorite_count")),
        "quote_count": count(get(raw, "quote_count")),
    }


KIND = Kind("v1.1", RAW, to_canonical)
