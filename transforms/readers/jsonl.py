"""JSON lines, fast: chunks of whole lines go through pyarrow's multithreaded JSON reader with an explicit schema of
only the fields the file's kind needs, then through that kind's vectorized mapper.

The fast path is optimistic; the slow path (orjson, then `classify`, per line) is authoritative. A line goes slow
when it is not one {...} object on its own, holds bytes that are not UTF-8 (checked per chunk: the reader would let
them through), sits in a span the reader refuses (a malformed line or a type conflict: spans are bisected down to
the offending lines), or maps to records that fail validation, carry a guard field (DMs) or are absent (a page
without tweets), or may name another kind than the file's. A file's kind comes from its first line that holds a good
tweet or a v2 page; a later tweet whose markers name only other kinds is read as its own kind (`classify.kind_of`:
files are often several dumps put together). The slow path accepts everything the fast one does, so a line's outcome
never depends on how the file was cut into chunks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from transforms.readers import classify
from transforms.readers.base import Part, excerpt, one_reject
from transforms.readers.prefetch import prefetch
from transforms.readers.records import GUARDS, Kind, canonical, good_rows, map_all
from transforms.readers.sources import BrokenStream
from transforms.schema import REJECT_SCHEMA, TWEET_SCHEMA

LEAF_LINES = 8  # a refused span this small goes line by line to the slow path
MIN_BLOCK = 1 << 20
_OPEN, _CLOSE, _CR = ord("{"), ord("}"), ord("\r")


@dataclass(frozen=True)
class LineSpec:
    """How the fast path reads a file's lines: one record per line, or a v2 page (list or single) per line."""

    kind: Kind
    container: str  # "record" | "page" | "page_one"

    @property
    def schema(self) -> pa.Schema | None:
        inner = self.kind.parse_schema
        if self.container == "record":
            return inner
        struct = pa.struct(list(inner))
        return pa.schema([("data", pa.list_(struct) if self.container == "page" else struct)])

    @property
    def default(self) -> Kind | None:
        """The kind the slow path gives bare tweet objects that name no other: the fast path's, so both agree."""
        return self.kind if self.container == "record" else None


def line_spec(value, forced: Kind | None) -> LineSpec | None:
    """The spec a line sets for its file: only bare tweets and v2 pages do (mirrors classify.unpack)."""
    if not isinstance(value, dict) or ("_source" in value and "body" in value) or "statuses" in value:
        return None
    if classify.is_page(value):
        data = value.get("data")
        if isinstance(data, list):
            return LineSpec(forced or classify.v2.KIND, "page")
        return LineSpec(forced or classify.v2.KIND, "page_one") if isinstance(data, dict) else None
    if classify.archive.unwrap(value) is not None or classify.describe(value) is not None:
        return None
    return LineSpec(forced or classify.kind_by_markers(value), "record")


def line_chunks(stream, batch_bytes: int) -> Iterator[tuple[bytes, str | None]]:
    """(whole lines, None), about `batch_bytes` at a time (a longer line comes whole); at a broken stream,
    (the unreadable rest, the break's message) comes last. Each chunk is copied once, from the block read."""
    pending = b""
    while True:
        try:  # after a line longer than the budget: read as much again as there is, until its end shows
            block = stream.read(batch_bytes - len(pending) if len(pending) < batch_bytes else len(pending))
        except BrokenStream as e:
            cut = pending.rfind(b"\n") + 1
            if cut:
                yield pending[:cut], None
            yield pending[cut:], str(e)
            return
        if not block:
            if pending:
                yield pending, None
            return
        cut = block.rfind(b"\n") + 1
        if not cut:
            pending += block
            continue
        yield b"".join((pending, memoryview(block)[:cut])) if pending or cut < len(block) else block, None
        pending = block[cut:]


class Lines:
    """Line boundaries of a chunk of whole lines, found with numpy; `shaped` marks lines that are one {...} object
    (the only ones the fast path sees), `blank` those holding nothing."""

    def __init__(self, data: bytes, first_line: int):
        self.data, self.first_line = data, first_line
        arr = np.frombuffer(self.data, np.uint8)
        newlines = np.flatnonzero(arr == 10)
        self.newlines = len(newlines)
        self.starts = np.concatenate(([0], newlines + 1))
        self.ends = np.concatenate((newlines, [len(arr)]))
        if self.starts[-1] == len(arr):  # nothing after the final newline
            self.starts, self.ends = self.starts[:-1], self.ends[:-1]
        self.numbers = self.first_line + np.arange(len(self.starts), dtype=np.int64)
        size = self.ends - self.starts
        if len(arr):
            head = arr[np.minimum(self.starts, len(arr) - 1)]
            tail = arr[np.maximum(self.ends - 1, 0)]
            before = arr[np.maximum(self.ends - 2, 0)]
            closed = (tail == _CLOSE) | ((tail == _CR) & (before == _CLOSE) & (size >= 2))
            self.shaped = (size >= 2) & (head == _OPEN) & closed
        else:
            self.shaped = np.zeros(0, dtype=bool)
        self.blank = np.zeros(len(self.starts), dtype=bool)
        for i in np.flatnonzero(~self.shaped):  # the few odd lines: blank, padded with spaces, or not an object
            text = self.data[self.starts[i] : self.ends[i]].strip()
            self.blank[i] = not text
            self.shaped[i] = text.startswith(b"{") and text.endswith(b"}")
        if not _valid_utf8(self.data):  # pyarrow would pass bad bytes through: such lines take the slow path
            for i in np.flatnonzero(self.shaped):
                try:
                    self.raw(i).decode("utf-8")
                except UnicodeDecodeError:
                    self.shaped[i] = False

    def raw(self, i: int) -> bytes:
        return self.data[self.starts[i] : self.ends[i]]

    @cached_property
    def binary(self) -> pa.Array:
        """The lines (each with its line end) as a binary array over the chunk, for vectorized searches."""
        offsets = pa.py_buffer(np.concatenate((self.starts, self.ends[-1:])))
        return pa.Array.from_buffers(pa.large_binary(), len(self.starts), [None, offsets, pa.py_buffer(self.data)])


def _valid_utf8(data: bytes) -> bool:
    """Arrow's UTF-8 validation over the whole chunk, without copying it."""
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    blob = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        blob.cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


def _matching(lines: pa.Array, patterns: tuple[str, ...]) -> np.ndarray:
    """Per line, whether any regex matches. Matches are rare: the lines are searched as one value first, which is
    faster than a search per line."""
    _, offsets, data = lines.buffers()
    ends = np.frombuffer(offsets, np.int64)[[lines.offset, lines.offset + len(lines)]]
    whole = pa.Array.from_buffers(pa.large_binary(), 1, [None, pa.py_buffer(ends), data])
    found = np.zeros(len(lines), dtype=bool)
    for pattern in patterns:
        if pc.match_substring_regex(whole, pattern)[0].as_py():
            found |= pc.match_substring_regex(lines, pattern).to_numpy(False)
    return found


def _parse(buffer: memoryview, schema: pa.Schema | None, block_size: int) -> pa.Table:
    return pj.read_json(
        pa.BufferReader(pa.py_buffer(buffer)),
        read_options=pj.ReadOptions(use_threads=True, block_size=block_size),
        parse_options=pj.ParseOptions(
            explicit_schema=schema, unexpected_field_behavior="ignore" if schema is not None else "infer"
        ),
    )


class ChunkReader:
    """Reads one chunk: fast path over spans of lines, the slow path for the rest."""

    def __init__(self, lines: Lines, spec, forced: Kind | None, options, source_file: str, start: int = 0):
        self.lines, self.spec, self.forced = lines, spec, forced
        self.options, self.source_file = options, source_file
        self.start = start  # lines before this one precede the line that set the spec: no spec for them
        self.fast_tweets: list[pa.Table] = []
        self.slow: list[int] = []  # line positions for the slow path

    def run(self) -> tuple[pa.Table, pa.Table]:
        lines = self.lines
        after = np.arange(len(lines.starts)) >= self.start
        candidates = np.flatnonzero(lines.shaped & after)
        self.slow = np.flatnonzero(~lines.blank & ~(lines.shaped & after)).tolist()
        if self.spec is not None and len(candidates):
            self._fast(candidates)
        else:
            self.slow += candidates.tolist()
        slow_tweets, rejects = self._slow(sorted(self.slow))
        tweets = self.fast_tweets + [slow_tweets]
        table = pa.concat_tables(tweets) if len(tweets) > 1 else tweets[0]
        if slow_tweets.num_rows and len(tweets) > 1:
            table = table.sort_by([("source_line", "ascending"), ("source_index", "ascending")])
        return table, rejects

    def _fast(self, candidates: np.ndarray) -> None:
        lines = self.lines
        if bool(np.all(lines.shaped | lines.blank)):
            buffer, starts, ends = memoryview(lines.data), lines.starts[candidates], lines.ends[candidates]
        else:  # leave the odd lines out of the buffer the reader sees
            pieces = [lines.raw(i) for i in candidates]
            sizes = np.fromiter((len(p) + 1 for p in pieces), dtype=np.int64, count=len(pieces))
            ends = np.cumsum(sizes) - 1
            starts = ends - sizes + 1
            buffer = memoryview(b"\n".join(pieces))
        longest = int((ends - starts).max()) + 2
        block = max(MIN_BLOCK, 1 << int(longest).bit_length())
        self._span(buffer, starts, ends, candidates, block)

    def _span(self, buffer, starts, ends, positions, block: int) -> None:
        """Fast-read lines `positions` (buffer[starts[k]:ends[k]] each); bisect when the reader refuses them."""
        try:
            table = _parse(buffer[starts[0] : ends[-1]], self.spec.schema, block)
        except (pa.ArrowException, ValueError):
            table = None
        if table is not None and table.num_rows == len(positions):
            self._accept(table, positions)
        elif len(positions) <= LEAF_LINES:
            self.slow += positions.tolist()
        else:
            mid = len(positions) // 2
            self._span(buffer, starts[:mid], ends[:mid], positions[:mid], block)
            self._span(buffer, starts[mid:], ends[mid:], positions[mid:], block)

    def _accept(self, table: pa.Table, positions: np.ndarray) -> None:
        """Map the parsed lines; keep the rows of lines that came out clean, send the other lines to the slow path."""
        spec, n = self.spec, len(positions)
        if spec.container == "record":
            records, owner, index = table, np.arange(n), np.zeros(n, dtype=np.int32)
        elif spec.container == "page_one":
            data = table.column("data").combine_chunks()
            present = pc.is_valid(data)
            owner = np.flatnonzero(present.to_numpy(False))
            records, index = pa.Table.from_struct_array(data.filter(present)), np.zeros(len(owner), dtype=np.int32)
        else:
            data = table.column("data").combine_chunks()
            owner = pc.list_parent_indices(data).to_numpy()
            records = pa.Table.from_struct_array(pc.list_flatten(data))
            index = (np.arange(len(owner)) - np.searchsorted(owner, owner)).astype(np.int32)
        rows, reasons = canonical(
            spec.kind, records, self.options, self.source_file, self.lines.numbers[positions[owner]], index
        )
        bad = pc.is_valid(reasons).to_numpy(False)
        for guard in GUARDS:
            if guard in records.column_names:
                bad |= pc.is_valid(records.column(guard)).to_numpy(False)
        if spec.container == "record" and self.forced is None:
            bad |= self._foreign(records, positions, bad)
        line_bad = np.bincount(owner, minlength=n) == 0  # a line without records
        line_bad[owner[bad]] = True
        if line_bad.any():
            self.slow += positions[line_bad].tolist()
            rows = rows.filter(pa.array(~line_bad[owner]))
            reasons = reasons.filter(pa.array(~line_bad[owner]))
        self.fast_tweets.append(good_rows(rows, reasons))

    def _foreign(self, records: pa.Table, positions: np.ndarray, bad: np.ndarray) -> np.ndarray:
        """Lines the slow path may read as another kind than the file's: their parsed fields show no marker of the
        file's kind, and their bytes may hold one of another kind (`classify.foreign`)."""
        doubt = np.flatnonzero(~bad & ~classify.marked(records, self.spec.kind))
        out = np.zeros(len(positions), dtype=bool)
        if len(doubt):
            out[doubt] = _matching(self.lines.binary.take(positions[doubt]), classify.foreign(self.spec.kind))
        return out

    def _slow(self, positions: list[int]) -> tuple[pa.Table, pa.Table]:
        """Line by line with orjson; every line ends as records, or as exactly one reject per failure."""
        records, rejects = [], []
        default = self.spec.default if self.spec is not None else None
        for i in positions:
            raw, number = self.lines.raw(i), int(self.lines.numbers[i])
            kind = default if i >= self.start else None
            try:
                value = loads(raw)
            except ValueError as e:
                rejects.append((number, _parse_failure(raw, e), excerpt(raw)))
                continue
            found = classify.unpack(value, self.forced, kind)
            if found.empty is not None:
                rejects.append((number, found.empty, excerpt(raw)))
            records += [(number, index, of_kind, record) for index, of_kind, record in found.records]
            rejects += [(number, reason, excerpt(orjson.dumps(element))) for _, reason, element, _ in found.others]
        if not records and not rejects:
            return TWEET_SCHEMA.empty_table(), REJECT_SCHEMA.empty_table()
        return map_all(records, rejects, self.options, self.source_file)


def loads(raw: bytes):
    """orjson, plus the bare NaN/Infinity literals that pyarrow's reader takes: the slow path must accept every
    line the fast path accepts, or a line's fate would depend on the company it keeps in a chunk."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        if b"NaN" not in raw and b"Infinity" not in raw:
            raise
    value = json.loads(raw)
    orjson.dumps(value)  # refuses what Python's parser lets through and Arrow cannot hold (lone surrogates)
    return value


def _parse_failure(raw: bytes, error: ValueError) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"invalid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})"
    return f"malformed JSON: {error}"


def first_spec(lines: Lines, forced: Kind | None, options, source_file: str) -> tuple[int, LineSpec | None]:
    """(position, spec) of the chunk's first line that sets the file's spec: a v2 page, or a bare tweet that maps
    to a good row; (-1, None) when no line does. Lines before it are read as if there were no spec yet."""
    for i in np.flatnonzero(~lines.blank):
        try:
            value = loads(lines.raw(i))
        except ValueError:
            continue
        spec = line_spec(value, forced)
        if spec is None:
            continue
        if spec.container != "record" or map_all([(1, 0, spec.kind, value)], [], options, source_file)[0].num_rows:
            return int(i), spec
    return -1, None


def scanned_chunks(stream, batch_bytes: int, line: int = 1) -> Iterator[tuple[int, Lines | None, bytes, str | None]]:
    """(first line number, lines, data, None) per chunk; (line, None, the unreadable rest, why) after a break."""
    for data, broken in line_chunks(stream, batch_bytes):
        if broken is not None:
            yield line, None, data, f"{broken}; the rest of the file is lost"
            return
        lines = Lines(data, line)
        yield line, lines, data, None
        line += lines.newlines


def read_jsonl(
    stream, source_file: str, options, forced: Kind | None, first_line: int = 1,
    known: tuple[LineSpec | None, int] | None = None,
) -> Iterator[Part]:
    """`known`: for a piece of a file read on its own (readers/pieces.py), the file's spec and the number of the line
    that set it; None: the spec comes from the first line here that sets one."""
    spec = None if known is None else known[0]
    for line, lines, data, broken in prefetch(scanned_chunks(stream, options.batch_bytes, first_line)):
        if broken is not None:
            yield Part(TWEET_SCHEMA.empty_table(), one_reject(source_file, line, broken, data), len(data))
            return
        start = 0
        if known is not None:
            start = len(lines.starts) if spec is None else int(np.searchsorted(lines.numbers, known[1]))
        elif spec is None:
            start, spec = first_spec(lines, forced, options, source_file)
            start = len(lines.starts) if start < 0 else start
        tweets, rejects = ChunkReader(lines, spec, forced, options, source_file, start).run()
        yield Part(tweets, rejects, len(data))
