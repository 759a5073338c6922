"""Gnip / PowerTrack Activity Streams: ids are tags ("tag:search.twitter.com,2005:123"), the text is `body`."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from transforms.readers.fields import count, first, get, last_segment
from transforms.readers.records import Kind
from transforms.readers.timestamps import parse_timestamps


def _ref(*fields: tuple[str, pa.DataType]) -> pa.DataType:
    return pa.struct(list(fields))


RAW = pa.schema(
    [
        ("id", pa.string()),
        ("verb", pa.string()),
        ("body", pa.string()),
        ("long_object", _ref(("body", pa.string()))),  # the untruncated text of a long post
        ("postedTime", pa.string()),
        ("twitter_lang", pa.string()),
        ("actor", _ref(("id", pa.string()))),
        ("object", _ref(("id", pa.string()))),  # for verb "share": the shared activity
        ("inReplyTo", _ref(("link", pa.string()))),
        ("twitter_quoted_status", _ref(("id", pa.string()))),
        ("retweetCount", pa.int64()),
        ("favoritesCount", pa.int64()),
    ]
)


def to_canonical(raw: pa.Table, _options=None) -> dict:
    verb, posted = get(raw, "verb"), get(raw, "postedTime")
    shared = last_segment(get(raw, "object", "id"), ":")
    if shared is not None:
        shared = pc.if_else(pc.fill_null(pc.equal(verb, "share"), False), shared, pa.scalar(None, pa.string()))
    return {
        "id": last_segment(get(raw, "id"), ":"),
        "text": first(get(raw, "long_object", "body"), get(raw, "body")),
        "created_at": None if posted is None else parse_timestamps(posted),
        "author_id": last_segment(get(raw, "actor", "id"), ":"),
        "lang_hint": get(raw, "twitter_lang"),
        "in_reply_to_id": last_segment(get(raw, "inReplyTo", "link"), "/"),
        "retweet_of_id": shared,
        "quote_of_id": last_segment(get(raw, "twitter_quoted_status", "id"), ":"),
        "retweet_count": count(get(raw, "retweetCount")),
        "like_count": count(get(raw, "favoritesCount")),
    }


KIND = Kind("activity", RAW, to_canonical)
