"""What a parsed JSON value holds: which of its parts are tweet records (and of which kind), which are something
else (users, DM events, counts, stream notices ...), and why a value that holds no tweet is rejected.

Containers are taken apart here: HTTP envelopes ({"_source", "body"}), v1.1 search responses ({"statuses"}), v2
pages ({"data", "includes", "meta"}; includes are referenced context, never records), archive elements and arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from transforms.readers import activity, archive, tabular, v1, v2
from transforms.readers.records import GUARDS, Kind

FORCED: dict[str, Kind] = {"v1.1": v1.KIND, "v2": v2.KIND, "activity": activity.KIND, "archive": archive.TWEET}

# Keys that hold a tweet's text in some kind: an object with one of them is a tweet unless it is a DM.
TEXT_KEYS = frozenset(
    ("text", "full_text", "extended_tweet", "note_tweet", "body", "long_object", "tweet_text", "content", "tweet")
)
PAGE_KEYS = frozenset(("data", "includes", "meta", "errors", "__twarc", "matching_rules"))
ACTIVITY_MARKERS = frozenset(("verb", "actor"))
V1_MARKERS = frozenset(("id_str", "full_text", "extended_tweet", "user", "retweeted_status", "favorite_count",
                        "in_reply_to_status_id_str", "quoted_status_id_str"))
V2_MARKERS = frozenset(("edit_history_tweet_ids", "public_metrics", "referenced_tweets", "note_tweet", "author_id",
                        "conversation_id", "reply_settings", "__twarc"))
# The top-level keys that name each kind (an activity's "tag:..." id names it too).
MARKERS = {activity.KIND: ACTIVITY_MARKERS, v1.KIND: V1_MARKERS, tabular.FLAT: tabular.MARKERS, v2.KIND: V2_MARKERS}
DM_KEYS = frozenset(GUARDS)  # checked before the text keys: these DMs have a text
STREAM_KEYS = frozenset(("delete", "limit", "scrub_geo", "status_withheld", "user_withheld", "disconnect", "warning",
                         "info", "error", "event", "friends", "system"))

LIST_FIELDS = frozenset(("id", "name", "description", "private", "owner_id", "created_at", "follower_count",
                         "member_count"))
# (keys, any one of which identifies the object, singular, plural) for objects that are not tweets.
NON_TWEETS = (
    (frozenset(("users",)), "a users response", "users"),
    (frozenset(("lists",)), "a lists response", "lists"),
    (frozenset(("ids",)), "an ids response", "id lists"),
    (frozenset(("events",)), "a direct-message events response", "direct-message events"),
    (frozenset(("dm_conversation_id", "dm_event_id", "direct_message", "message_create", "recipient_screen_name")),
     "a direct-message event", "direct-message events"),
    (frozenset(("username", "screen_name")), "a user", "users"),
    (frozenset(("tweet_count",)), "a tweet count", "tweet counts"),
    (STREAM_KEYS, "a stream notice", "stream notices"),
    (frozenset(("upload_url", "download_url")), "a compliance job", "compliance jobs"),
    (frozenset(("action",)), "a compliance event", "compliance events"),
    (frozenset(("member_count", "subscriber_count", "follower_count", "slug")), "a list", "lists"),
    (frozenset(("state", "host_ids", "creator_id")), "a space", "spaces"),
    (frozenset(("query",)), "a saved search", "saved searches"),
    (frozenset(("full_name", "country_code", "place_type", "bounding_box", "geometry")), "a place", "places"),
    (frozenset(("relationship",)), "a relationship", "relationships"),
    (frozenset(("resources", "rate_limit_context")), "a rate-limit status", "rate-limit statuses"),
    (frozenset(("html", "provider_url")), "an oEmbed card", "oEmbed cards"),
)


@dataclass
class Unpacked:
    records: list[tuple[int, Kind, dict]] = field(default_factory=list)  # (index in the value, kind, record)
    # Elements that are not tweets: (index, reason, element, plural noun naming what they are).
    others: list[tuple[int, str, object, str]] = field(default_factory=list)
    empty: str | None = None  # the value holds no tweet: the reason of its one reject


def describe(obj: dict) -> tuple[str, str] | None:
    """(singular, plural) naming a known kind of object that is not a tweet; None for a tweet (or a broken one)."""
    keys = obj.keys()
    if any(obj.get(k) is not None for k in DM_KEYS):  # as the fast path sees it: a null guard is no guard
        return "a direct-message event", "direct-message events"
    if not TEXT_KEYS.isdisjoint(keys):
        return None
    for markers, singular, plural in NON_TWEETS:
        if not markers.isdisjoint(keys):
            return singular, plural
    if obj and all(isinstance(v, bool) for v in obj.values()):
        return "an action result", "action results"
    if keys <= LIST_FIELDS and "name" in keys:
        return "a list", "lists"
    if "id" not in keys and "id_str" not in keys:
        return "an object without tweet fields", "objects without tweet fields"
    return None


def kind_by_markers(obj: dict) -> Kind:
    """A bare tweet object's kind, from fields only that kind has."""
    ident = obj.get("id")
    if not ACTIVITY_MARKERS.isdisjoint(obj) or (isinstance(ident, str) and ident.startswith("tag:")):
        return activity.KIND
    if not V1_MARKERS.isdisjoint(obj) or (isinstance(ident, int) and not isinstance(ident, bool)):
        return v1.KIND
    if not tabular.MARKERS.isdisjoint(obj) and V2_MARKERS.isdisjoint(obj):
        return tabular.FLAT
    return v2.KIND


def named(obj: dict) -> set[Kind]:
    """The kinds whose markers a bare tweet object has."""
    ident = obj.get("id")
    kinds = {kind for kind, keys in MARKERS.items() if not keys.isdisjoint(obj)}
    if isinstance(ident, str) and ident.startswith("tag:"):
        kinds.add(activity.KIND)
    return kinds


def kind_of(obj: dict, default: Kind | None) -> Kind:
    """A bare tweet object's kind: the file's (`default`) unless the object's markers name only other kinds, as in
    a file that is several teams' dumps put together; then its markers decide."""
    if default is not None:
        kinds = named(obj)
        if not kinds or default in kinds:
            return default
    return kind_by_markers(obj)


def marked(raw: pa.Table, kind: Kind) -> np.ndarray:
    """Per parsed row: a marker of `kind` holds a value, so `kind_of` keeps that kind whatever else the row has."""
    hit = np.zeros(raw.num_rows, dtype=bool)
    for name in MARKERS[kind].intersection(raw.column_names):
        hit |= pc.is_valid(raw.column(name)).to_numpy(False)
    return hit


@cache
def foreign(kind: Kind) -> tuple[str, str]:
    """Regexes over a line's bytes that find every key that may name a kind other than `kind`: its markers as quoted
    strings (at any depth, or a value: a superset), a "tag:" id, and escapes such as \\u0075ser that could spell
    one. Two regexes, each with one first byte for the search to skip to: one regex for both would be twice as slow."""
    keys = sorted(set().union(*(keys for other, keys in MARKERS.items() if other is not kind)))
    tag = "" if kind is activity.KIND else '|"tag:'
    return '"(?:' + "|".join(keys) + ')"' + tag, r"\\u00[2-7]"


def _json_type(value) -> str:
    return {str: "string", int: "number", float: "number", bool: "boolean", list: "array", dict: "object"}.get(
        type(value), "null"
    )


def _element(out: Unpacked, index: int, value, kind: Kind | None, default: Kind | None = None) -> None:
    """One would-be tweet: a record of `kind` (None: `kind_of` it, given the file's kind), or a non-tweet."""
    if not isinstance(value, dict):
        out.others.append((index, f"not a tweet (a JSON {_json_type(value)})", value, "JSON values"))
        return
    wrapped = archive.unwrap(value)
    if wrapped is not None:
        out.records.append((index, *wrapped))
        return
    known = describe(value)
    if known is not None:
        out.others.append((index, f"not a tweet (looks like {known[0]})", value, known[1]))
        return
    out.records.append((index, kind or kind_of(value, default), value))


def _collapse(out: Unpacked, container: bool) -> Unpacked:
    """A value with no tweet at all is one reject, not one per element."""
    if out.records or not out.others:
        return out
    if not container:
        what = out.others[0][1].removeprefix("not a tweet (").removesuffix(")")
    else:
        plurals = {plural for *_, plural in out.others}
        what = f"looks like a {plurals.pop()} response" if len(plurals) == 1 else "holds only non-tweet objects"
    return Unpacked(empty=f"document holds no tweets ({what})")


def _envelope_body(value: dict):
    body = value.get("body")
    if isinstance(body, (str, bytes)):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
    return body


def is_page(value: dict) -> bool:
    """A v2 response page (or an error/meta-only response) rather than a tweet."""
    return TEXT_KEYS.isdisjoint(value) and not PAGE_KEYS.isdisjoint(value) and "id" not in value


def unpack(value, forced: Kind | None = None, default: Kind | None = None, part: str | None = None) -> Unpacked:
    """Take a parsed JSON value apart. `forced` fixes the kind of every tweet; `default` is that of bare tweet
    objects whose markers name no other kind (a JSONL file's kind); `part` is set for the array of an
    account-archive file."""
    if part is not None:
        if not isinstance(value, list):
            return Unpacked(empty=f"document holds no tweets (archive part {part!r} is not an array)")
        out = Unpacked()
        for i, element in enumerate(value):
            if isinstance(element, dict) and archive.unwrap(element) is not None:
                out.records.append((i, *archive.unwrap(element)))
            else:
                out.others.append((i, f"not a tweet (an entry of archive part {part!r})", element, part))
        if not out.records and out.others:
            return Unpacked(empty=f"document holds no tweets (looks like the archive part {part!r})")
        return out
    out = Unpacked()
    if isinstance(value, list):
        if not value:
            return Unpacked(empty="document holds no tweets (an empty array)")
        for i, element in enumerate(value):
            _element(out, i, element, forced, default)
        return _collapse(out, True)
    if not isinstance(value, dict):
        return Unpacked(empty=f"document holds no tweets (a JSON {_json_type(value)})")
    if "_source" in value and "body" in value:
        body = _envelope_body(value)
        if body is None:
            return Unpacked(empty="document holds no tweets (an HTTP envelope without a JSON body)")
        return unpack(body, forced, default)
    if isinstance(value.get("statuses"), list):
        for i, element in enumerate(value["statuses"]):
            _element(out, i, element, forced or v1.KIND)
        return _collapse(out, True) if value["statuses"] else Unpacked(
            empty="document holds no tweets (an empty search response)"
        )
    if is_page(value):
        data = value.get("data")
        if isinstance(data, list) and data:
            for i, element in enumerate(data):
                _element(out, i, element, forced or v2.KIND)
            return _collapse(out, True)
        if isinstance(data, dict):
            _element(out, 0, data, forced or v2.KIND)
            return _collapse(out, False)
        if "errors" in value and not data:
            return Unpacked(empty="document holds no tweets (looks like an error response)")
        return Unpacked(empty="document holds no tweets (looks like an empty v2 response)")
    _element(out, 0, value, forced, default)
    return _collapse(out, False)
