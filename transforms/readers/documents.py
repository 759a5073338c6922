"""Whole JSON documents: a pretty-printed API response, a JSON array of tweets, an account-archive .js file.

Such documents are small next to line-oriented dumps (an API page holds 100 tweets), so they are parsed whole with
orjson, taken apart by `classify`, and mapped by the same per-kind mappers as JSON lines.
"""

from __future__ import annotations

import orjson

from transforms.readers import archive, classify
from transforms.readers.base import Part, empty_part, excerpt, one_reject
from transforms.readers.records import Kind, map_all
from transforms.schema import TWEET_SCHEMA

SNIFF_LINES = 10


def _lines_like(content: bytes) -> bool:
    """Whether a document that does not parse is really JSON lines: its first line is one {...} of its own, or one
    of the next lines parses alone (a pretty-printed document's lines do neither)."""
    head = [line.strip() for line in content.split(b"\n", SNIFF_LINES + 1)[: SNIFF_LINES + 1]]
    head = [line for line in head if line]
    if head and head[0].startswith(b"{") and head[0].endswith(b"}") and len(head[0]) > 2:
        return True
    for line in head[1:SNIFF_LINES]:
        try:
            orjson.loads(line)
            return True
        except orjson.JSONDecodeError:
            continue
    return False


def read_document(content: bytes, source_file: str, options, forced: Kind | None) -> Part | None:
    """The document's records and rejects; None when it turns out to be JSON lines (the caller reads it so)."""
    part, body = archive.split_assignment(content)
    text = body.lstrip()
    if not text:
        return empty_part(len(content))
    line = 1 + content.count(b"\n", 0, len(content) - len(text))
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        if part is None and _lines_like(content):
            return None
        what = f"archive part {part!r}" if part else "JSON document"
        return Part(TWEET_SCHEMA.empty_table(), one_reject(source_file, line, f"malformed {what}: {e}", text),
                    len(content))
    found = classify.unpack(value, forced, None, part)
    records = [(line, index, kind, record) for index, kind, record in found.records]
    rejects = [(line, reason, excerpt(orjson.dumps(element))) for _, reason, element, _ in found.others]
    if found.empty is not None:
        rejects.append((line, found.empty, excerpt(text)))
    return Part(*map_all(records, rejects, options, source_file), len(content))
