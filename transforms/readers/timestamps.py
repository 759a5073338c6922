"""Timestamp strings of every input format -> timestamp[us, UTC], vectorized; what cannot be parsed becomes null.

The common cases cost one pass: ISO-8601 with a zone (API v2, Activity Streams) is a plain cast, and a reader that
knows its format (v1.1's "Wed Oct 10 20:19:24 +0000 2018") names it first. Other formats are tried only for the
values still unparsed, and give the same instant the cast would.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from transforms.schema import TIMESTAMP

V1_FORMAT = "%a %b %d %H:%M:%S %z %Y"
# Tried in order on values the cast could not read; fractions of a second are dropped first (strptime has no %f).
FALLBACK_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M%z",
    "%Y-%m-%dT%H%z",
    "%Y-%m-%d %H:%M%z",
    "%Y-%m-%d %H%z",
    V1_FORMAT,
    "%Y-%m-%d %H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d",
)


def _iso(values: pa.Array) -> pa.Array | None:
    try:
        return pc.cast(values, TIMESTAMP)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _strptime(values: pa.Array, fmt: str) -> pa.Array:
    return pc.strptime(values, format=fmt, unit="us", error_is_null=True).cast(TIMESTAMP)


def _epoch(values: pa.Array) -> pa.Array:
    """Unix seconds (10 digits) or milliseconds (13 digits), as CSV exports and v1.1's timestamp_ms hold them."""
    length = pc.utf8_length(values)
    seconds, millis = pc.equal(length, 10), pc.equal(length, 13)
    usable = pc.and_(pc.ascii_is_decimal(values), pc.or_(seconds, millis))
    as_int = pc.cast(pc.if_else(usable, values, pa.scalar(None, pa.string())), pa.int64())
    micros = pc.if_else(seconds, pc.multiply(as_int, 1_000_000), pc.multiply(as_int, 1_000))
    return micros.cast(TIMESTAMP)


def _micros(values: pa.Array) -> pa.Array:
    """Timestamps of any unit as microseconds: nanoseconds (pandas' unit) are truncated, and seconds or
    milliseconds beyond what microseconds can hold become null, so no value stops the batch."""
    if values.type.unit == "ns":
        return values.cast(TIMESTAMP, safe=False)
    factor = {"s": 1_000_000, "ms": 1_000, "us": 1}[values.type.unit]
    raw = values.cast(pa.int64())
    fits = pc.less_equal(pc.abs(raw), (2**63 - 1) // factor)
    return pc.multiply(pc.if_else(fits, raw, pa.scalar(None, pa.int64())), factor).cast(TIMESTAMP)


def parse_timestamps(values, first: str | None = None) -> pa.Array:
    """`values` (strings, or already timestamps/integers) as TIMESTAMP; `first`: a strptime format to try first."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_timestamp(values.type):
        return _micros(values if values.type.tz else pc.assume_timezone(values, "UTC"))
    if pa.types.is_integer(values.type):
        values = values.cast(pa.string())
    elif not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    wanted = len(values) - values.null_count
    parsed = _strptime(values, first) if first else None
    if parsed is not None and len(parsed) - parsed.null_count == wanted:
        return parsed
    iso = _iso(values)
    if iso is not None:
        return iso if parsed is None else pc.coalesce(parsed, iso)
    whole = pc.replace_substring_regex(values, r"\.\d+", "")
    attempts = [lambda fmt=fmt: _strptime(whole, fmt) for fmt in FALLBACK_FORMATS if fmt != first]
    attempts.append(lambda: _epoch(values))
    fraction = _fraction(values)
    for attempt in attempts:
        more = attempt()
        parsed = more if parsed is None else pc.coalesce(parsed, more)
        if len(parsed) - parsed.null_count == wanted:
            break
    return pc.add(parsed, fraction).cast(TIMESTAMP)


def _fraction(values: pa.Array) -> pa.Array:
    """The sub-second part that the strptime fallbacks drop, so a value parses the same with or without the cast."""
    digits = pc.struct_field(pc.extract_regex(values, r"\d:\d\d\.(?P<f>\d{1,6})"), "f")
    micros = pc.cast(pc.utf8_rpad(digits, 6, "0"), pa.int64())
    return pc.fill_null(micros, 0).cast(pa.duration("us"))
