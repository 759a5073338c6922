"""Twitter/X account archives: `window.YTD.<part>.part0 = [ {"tweet": {...}}, ... ]` (tweets.js, deleted-tweets.js)
and note-tweet.js (`{"noteTweet": {...}}`, long-form text). Archive tweets are v1.1 objects with numbers as strings,
so they share the v1.1 mapping; the strings are mended on the way in.
"""

from __future__ import annotations

import re

import pyarrow as pa

from transforms.readers import v1
from transforms.readers.fields import get
from transforms.readers.records import Kind
from transforms.readers.timestamps import parse_timestamps

_ASSIGNMENT = re.compile(rb"^\s*window\.(?:YTD\.)?([\w.]+?)(?:\.part\d+)?\s*=\s*")

TWEET = Kind("archive", v1.RAW, v1.to_canonical)

NOTE_RAW = pa.schema(
    [
        ("noteTweetId", pa.string()),
        ("createdAt", pa.string()),
        ("core", pa.struct([("text", pa.string())])),
    ]
)


def _note_to_canonical(raw: pa.Table, _options=None) -> dict:
    return {
        "id": get(raw, "noteTweetId"),
        "text": get(raw, "core", "text"),
        "created_at": parse_timestamps(raw["createdAt"]),
    }


NOTE = Kind("archive", NOTE_RAW, _note_to_canonical)

WRAPPERS = {"tweet": TWEET, "noteTweet": NOTE}


def split_assignment(content: bytes) -> tuple[str | None, bytes]:
    """(archive part name, JSON text) for `window.YTD.tweets.part0 = [...]`; (None, content) for plain JSON."""
    match = _ASSIGNMENT.match(content[:4096])
    if match is None:
        return None, content
    return match.group(1).decode("ascii"), content[match.end() :]


def unwrap(obj: dict) -> tuple[Kind, dict] | None:
    """An archive element {"tweet": {...}} / {"noteTweet": {...}} -> (kind, inner record)."""
    if len(obj) == 1:
        ((key, inner),) = obj.items()
        if key in WRAPPERS and isinstance(inner, dict):
            return WRAPPERS[key], inner
    return None
