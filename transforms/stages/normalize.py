"""normalize: clean the text once, for every later stage, and derive the dedupe key.

Text: HTML entities unescaped (the API escapes &, <, >), Unicode NFC, control and zero-width characters removed,
runs of spaces collapsed, at most one blank line kept, ends trimmed. Line breaks stay: they carry meaning.
Dedupe key: the text lowercased, "RT @x:" prefixes removed, @mentions -> "@user", URLs -> "http", whitespace
collapsed: two tweets with the same key say the same thing.
"""

from __future__ import annotations

import functools
import html
import unicodedata

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from transforms.stages.base import BatchStage, StageConfig, reasons_where

_NAMED_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&#39;", "'"), ("&apos;", "'"), ("&amp;", "&"))
_ANY_ENTITY = r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});"
_BASIC_ENTITY = r"&(?:lt|gt|quot|#39|apos|amp);"
_CONTROL = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F\x{200B}\x{2060}\x{FEFF}]"
MENTION = r"@[\p{L}\p{N}_]{1,50}"
URL = r"(?i)\b(?:https?://|www\.)\S+"
RT_PREFIX = r"^(?:(?i:rt)\s*@[\p{L}\p{N}_]{1,50}\s*:?\s*)+"


class NormalizeConfig(StageConfig):
    drop_empty: bool = True  # drop rows whose text is empty after cleaning


@functools.cache
def nfc_unstable() -> str:
    """A regex class of the characters that can make a string change under NFC (NFC_Quick_Check No or Maybe):
    combining marks, singletons, and second halves of canonical compositions. Strings without them are already NFC,
    so only the few rows that have them pay for normalization."""
    points = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))  # conjoining Hangul vowels and trailing consonants
    for cp in range(0x80, 0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        if unicodedata.combining(c) or unicodedata.normalize("NFC", c) != c:
            points.add(cp)
        d = unicodedata.decomposition(c)
        if d and not d.startswith("<") and len(d.split()) == 2:
            points.add(int(d.split()[1], 16))
    ranges, ordered = [], sorted(points)
    start = prev = ordered[0]
    for cp in ordered[1:] + [None]:
        if cp is not None and cp == prev + 1:
            prev = cp
            continue
        ranges.append(f"\\x{{{start:X}}}" if start == prev else f"\\x{{{start:X}}}-\\x{{{prev:X}}}")
        if cp is not None:
            start = prev = cp
    return "[" + "".join(ranges) + "]"


def _on_rows(text: pl.Series, mask: pl.Series, fn) -> pl.Series:
    """Apply a column function only where `mask` holds: most tweets need none of the costly fixes."""
    mask = mask.fill_null(False)
    if not mask.any():
        return text
    return text.scatter(mask.arg_true(), fn(text.filter(mask)))


def unescape_basic(text: pl.Expr) -> pl.Expr:
    """The entities the API writes, in one left-to-right pass (&amp; last, so "&amp;lt;" becomes "&lt;")."""
    for entity, char in _NAMED_ENTITIES:
        text = text.str.replace_all(entity, char, literal=True)
    return text


def normalize_text(text: pl.Expr) -> pl.Expr:
    """Everything but NFC and entities (see Normalize.annotate), as one expression chain."""
    return (
        text.str.replace_all(r"\r\n?", "\n")
        .str.replace_all(_CONTROL, "")
        .str.replace_all(r"[^\S\n]{2,}|[^\S\n ]", " ")
        .str.replace_all(r" ?\n ?", "\n")
        .str.replace_all(r"\n{3,}", "\n\n")
        .str.strip_chars()
    )


# A row matches this if and only if normalize_text would change it beyond trimming its ends.
_NEEDS_CLEANING = r"\r|" + _CONTROL + r"|[^\S\n]{2,}|[^\S\n ]| \n|\n |\n{3,}"


def dedupe_key(text: pl.Expr) -> pl.Expr:
    """The key of text that normalize_text has cleaned: its only whitespace is single spaces, "\n" and "\n\n",
    so line breaks become spaces with literal (fast) replaces."""
    return (
        text.str.to_lowercase()
        .str.replace(RT_PREFIX, "")
        .str.replace_all(URL, "http")
        .str.replace_all(MENTION, "@user")
        .str.replace_all("\n\n", " ", literal=True)
        .str.replace_all("\n", " ", literal=True)
        .str.strip_chars()
    )


def unescape(text: pl.Series) -> pl.Series:
    """Vectorized for the API's own entities; the rare rows with other entities (numeric, named) go through
    html.unescape, alone, so no row is unescaped twice."""
    text = _on_rows(text, text.str.contains("&", literal=True), _unescape_rows)
    return text


def _unescape_rows(text: pl.Series) -> pl.Series:
    rare = text.str.count_matches(_ANY_ENTITY) > text.str.count_matches(_BASIC_ENTITY)
    basic = pl.DataFrame({"t": text}).select(unescape_basic(pl.col("t"))).to_series()
    return _on_rows(basic, rare, lambda rows: text.filter(rare).map_elements(html.unescape, return_dtype=pl.String))


class Normalize(BatchStage):
    name = "normalize"
    Config = NormalizeConfig
    reads = ("text",)
    writes = (pa.field("text", pa.string()), pa.field("dedupe_key", pa.string()))
    internal = ("dedupe_key",)  # holds the raw words of the tweet: never published
    thread_safe = True  # polars expressions on the batch alone

    def annotate(self, table: pa.Table) -> pa.Table:
        text = unescape(pl.from_arrow(table.column("text")).cast(pl.String))
        non_ascii = text.str.len_bytes() != text.str.len_chars()  # ASCII text is NFC: skip the costly check
        text = _on_rows(text, non_ascii, lambda rows: _on_rows(
            rows, rows.str.contains(nfc_unstable()), lambda unstable: unstable.str.normalize("NFC")))
        text = _on_rows(text, text.str.contains(_NEEDS_CLEANING), lambda rows: pl.DataFrame({"t": rows}).select(
            normalize_text(pl.col("t"))).to_series())
        frame = pl.DataFrame({"text": text.str.strip_chars()})
        frame = frame.with_columns(dedupe_key(pl.col("text")).alias("dedupe_key"))
        return frame.to_arrow().cast(pa.schema(self.writes))

    def drop_reasons(self, table: pa.Table) -> pa.Array:
        empty = pc.equal(pc.utf8_length(pc.fill_null(table.column("text"), "")), 0)
        return reasons_where(empty if self.config.drop_empty else None, "empty_text", table.num_rows)
