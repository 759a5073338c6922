"""Pieces of input files that workers read on their own, so that one large file is not parsed by one worker.

An uncompressed JSON-lines file larger than `piece_bytes` is cut into byte ranges of about that size, each holding
the lines that start in it; an uncompressed Parquet file into runs of whole row groups. Any other file (compressed,
CSV or TSV, a JSON document, an account archive) is one piece. A piece gives exactly the rows and rejects that
reading the whole file gives for the same lines, with the same source_line:

1. `plan_pieces` (driver) looks at each file's head or Parquet footer; a row group's first line is known there.
2. `count_piece` (worker, JSON lines only) counts a range's lines and finds its first line that sets the file's
   kind (jsonl.first_spec), and `settle` (driver) turns the counts into each range's first line number and the
   offset of the file's first such line.
3. `read_piece` (worker) reads the range with the kind read again from that one line, so lines before it are read
   as having no kind yet, as a whole-file read reads them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from transforms.readers import classify
from transforms.readers.base import InputError, Part
from transforms.readers.jsonl import Lines, first_spec, line_chunks, line_spec, loads, read_jsonl
from transforms.readers.parquet import read_parquet
from transforms.readers.reader import BOM, detect, read_file
from transforms.readers.sources import BrokenStream, compression_of, file_size, open_input, open_raw


@dataclass(frozen=True)
class Piece:
    """One task's share of an input file. `mode` "whole": the file, read by read_file; "lines": the lines that
    start in bytes [start, end); "parquet": row groups [start, end), whose first row is line `first_line`."""

    path: str
    mode: str = "whole"
    start: int = 0
    end: int = 0
    first_line: int = 1
    spec_at: int = -1  # lines: byte offset of the file's first line that sets its kind; -1: no line does
    spec_line: int = 0  # lines: that line's number


def plan_pieces(files: Sequence[str], options) -> list[Piece]:
    """Every file's pieces, files in order. A file whose head cannot be read is one piece: its reader says why."""
    return [piece for path in files for piece in _file_pieces(path, options)]


def _file_pieces(path: str, options) -> list[Piece]:
    whole = [Piece(path)]
    try:
        size = file_size(path)
        if size <= options.piece_bytes:
            return whole
        stream = open_input(path)
        try:
            if compression_of(path, stream.peek(8)) is not None:
                return whole
            if stream.peek(3) == BOM:
                stream.read(3)
            mode = detect(path, stream, options.format)
        finally:
            stream.close()
        if mode == "lines":
            n = -(-size // options.piece_bytes)
            return [Piece(path, "lines", k * size // n, (k + 1) * size // n) for k in range(n)]
        if mode == "parquet":
            with open_raw(path) as raw:
                meta = pq.ParquetFile(raw).metadata
            return _row_group_runs(path, meta, options.piece_bytes) or whole
    except (InputError, OSError, ValueError, BrokenStream, pa.ArrowException):
        pass
    return whole


def _row_group_runs(path: str, meta: pq.FileMetaData, piece_bytes: int) -> list[Piece]:
    """Runs of consecutive row groups of about `piece_bytes` uncompressed; none when the file is one run."""
    runs, start, size, first, line = [], 0, 0, 1, 1
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        size += group.total_byte_size
        line += group.num_rows
        if size >= piece_bytes or g == meta.num_row_groups - 1:
            runs.append(Piece(path, "parquet", start, g + 1, first))
            start, size, first = g + 1, 0, line
    return runs if len(runs) > 1 else []


class _Range:
    """Bytes [start, end) of a file, as the stream read_jsonl reads; `start` is moved forward to a line start."""

    def __init__(self, path: str, start: int, end: int):
        self.raw = open_raw(path)
        self.start, self.end = self._line_start(start), self._line_start(end)
        self.raw.seek(self.start)
        self.pos = self.start

    def _line_start(self, offset: int) -> int:
        """The first byte at or after `offset` that starts a line (a line belongs to the range it starts in)."""
        if offset == 0:
            return 0
        self.raw.seek(offset - 1)
        while True:
            block = self.raw.read(1 << 16)
            if not block:
                return self.raw.tell()
            cut = block.find(b"\n")
            if cut >= 0:
                return self.raw.tell() - len(block) + cut + 1

    def read(self, n: int = -1) -> bytes:
        n = self.end - self.pos if n < 0 else min(n, self.end - self.pos)
        out = self.raw.read(n) if n > 0 else b""
        self.pos += len(out)
        return out

    def close(self) -> None:
        self.raw.close()


def _opened(piece: Piece) -> _Range:
    """The piece's byte range, past a byte-order mark at the file's start (read_file skips it too)."""
    stream = _Range(piece.path, piece.start, piece.end)
    if stream.start == 0 and stream.end >= len(BOM) and stream.raw.read(len(BOM)) == BOM:
        stream.pos = len(BOM)
    else:
        stream.raw.seek(stream.start)
    return stream


def count_piece(piece: Piece, options) -> dict:
    """A byte range's line count, and the byte offset (-1: none) and index in the range of its first line that sets
    the file's kind."""
    forced = classify.FORCED.get(options.format)
    stream = _opened(piece)
    lines_seen, spec_at, spec_index = 0, -1, -1
    try:
        offset = stream.pos
        for data, broken in line_chunks(stream, options.batch_bytes):
            chunk = np.frombuffer(data, np.uint8)
            if spec_at < 0 and broken is None:
                lines = Lines(data, 1)
                found, _ = first_spec(lines, forced, options, piece.path)
                if found >= 0:
                    spec_at, spec_index = offset + int(lines.starts[found]), lines_seen + found
            lines_seen += int(np.count_nonzero(chunk == 10))
            offset += len(data)
            if broken is not None:
                break
    finally:
        stream.close()
    return {"lines": lines_seen, "spec_at": spec_at, "spec_index": spec_index}


def settle(pieces: Sequence[Piece], counts: Sequence[dict | None]) -> list[Piece]:
    """Each byte range's first line number and its file's first kind-setting line, from `count_piece` per piece
    (None for the pieces that need no count)."""
    firsts, line, path = [], 1, None
    for piece, count in zip(pieces, counts):
        if piece.path != path:
            path, line = piece.path, 1
        firsts.append(line)
        line += count["lines"] if piece.mode == "lines" else 0
    spec: dict[str, tuple[int, int]] = {}  # path -> (offset, number) of its first line that sets its kind
    for piece, count, first in zip(pieces, counts, firsts):
        if piece.mode == "lines" and count["spec_at"] >= 0:
            spec.setdefault(piece.path, (count["spec_at"], first + count["spec_index"]))
    out = []
    for piece, first in zip(pieces, firsts):
        if piece.mode == "lines":
            spec_at, spec_line = spec.get(piece.path, (-1, 0))
            piece = replace(piece, first_line=first, spec_at=spec_at, spec_line=spec_line)
        out.append(piece)
    return out


def _spec(piece: Piece, forced):
    """The file's spec, read again from the one line that set it (None when no line does)."""
    if piece.spec_at < 0:
        return None
    with open_raw(piece.path) as raw:
        raw.seek(piece.spec_at)
        return line_spec(loads(raw.readline().rstrip(b"\r\n")), forced)


def read_piece(piece: Piece, options) -> Iterator[Part]:
    """The piece's parts, in order, as read_file gives them for the same lines or row groups."""
    if piece.mode == "whole":
        yield from read_file(piece.path, options)
    elif piece.mode == "parquet":
        with open_raw(piece.path) as raw:
            yield from read_parquet(raw, piece.path, options, range(piece.start, piece.end), piece.first_line)
    else:
        forced = classify.FORCED.get(options.format)
        known = (_spec(piece, forced), piece.spec_line)
        stream = _opened(piece)
        try:
            yield from read_jsonl(stream, piece.path, options, forced, piece.first_line, known)
        finally:
            stream.close()
