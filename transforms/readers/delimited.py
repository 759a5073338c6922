"""CSV and TSV files with a header row, read in chunks of whole records by pyarrow's CSV reader.

Record boundaries and their line numbers come from one numpy pass (a newline ends a record when an even number of
quote characters precedes it). Rows with the wrong number of fields are caught by pyarrow's invalid-row handler
and become rejects. Where pyarrow and that count disagree (stray quotes inside a field) or a chunk holds invalid
UTF-8, Python's csv module re-reads that chunk row by row and is authoritative.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from transforms.readers import tabular
from transforms.readers.base import Part, excerpt, one_reject, reject_table
from transforms.readers.records import canonical, good_rows
from transforms.readers.sources import BrokenStream
from transforms.schema import REJECT_SCHEMA, TWEET_SCHEMA

_NL, _QUOTE, _CR = 10, 34, 13
FORCE_CUT = 4  # with no record end in this many batches (an unclosed quote), cut at a plain newline


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        name = name or "column"
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out


def record_ends(data: bytes, quoted: bool) -> np.ndarray:
    """Positions of the newlines that end a record."""
    arr = np.frombuffer(data, np.uint8)
    newlines = np.flatnonzero(arr == _NL)
    if not quoted:
        return newlines
    quotes = np.flatnonzero(arr == _QUOTE)
    return newlines[(np.searchsorted(quotes, newlines) & 1) == 0]


def record_chunks(stream, batch_bytes: int, quoted: bool) -> Iterator[tuple[bytes, str | None]]:
    """(chunk of whole records, None), and at a broken stream (unreadable rest, the break's message)."""
    pending = b""
    while True:
        try:
            block = stream.read(batch_bytes - len(pending) if len(pending) < batch_bytes else len(pending))
        except BrokenStream as e:
            ends = record_ends(pending, quoted)
            cut = int(ends[-1]) + 1 if len(ends) else 0
            if cut:
                yield pending[:cut], None
            yield pending[cut:], str(e)
            return
        if not block:
            if pending:
                yield pending, None
            return
        pending += block
        if len(pending) < batch_bytes:
            continue
        ends = record_ends(pending, quoted)
        if len(ends):
            cut = int(ends[-1]) + 1
        elif len(pending) >= FORCE_CUT * batch_bytes:
            cut = pending.rfind(b"\n") + 1
        else:
            continue
        if cut:
            yield pending[:cut], None
            pending = pending[cut:]


def _multiline_records_are_well_formed(data: bytes) -> bool:
    """Records with a line break inside a quoted field (a chunk holds few) each checked as the slow path would."""
    arr = np.frombuffer(data, np.uint8)
    newlines = np.flatnonzero(arr == _NL)
    ends = record_ends(data, True)
    inner = newlines[~np.isin(newlines, ends)]
    if not len(inner):
        return True
    which = np.unique(np.searchsorted(ends, inner))
    starts = np.where(which > 0, ends[np.maximum(which - 1, 0)] + 1, 0)
    stops = np.where(which < len(ends), ends[np.minimum(which, len(ends) - 1)] + 1, len(data))
    records = b"".join(data[a:b] for a, b in zip(starts, stops))  # well-formed records join into a well-formed text
    return _malformed(records.decode("utf-8", errors="surrogateescape") + "\n") is None


class DelimitedReader:
    """One CSV/TSV file after its header: chunks of records in, Parts out; keeps the running line number."""

    def __init__(self, source_file: str, options, delimiter: str, names: list[str], first_line: int):
        self.source_file, self.options, self.delimiter = source_file, options, delimiter
        self.quoted = delimiter == ","
        self.kind = tabular.CSV if self.quoted else tabular.TSV
        self.names = names
        self.line = first_line  # line number of the next chunk's first line

    def chunk(self, data: bytes) -> Part:
        first_line = self.line
        self.line += data.count(b"\n")
        fast = self._fast(data, first_line)
        tweets, rejects = fast if fast is not None else self._slow(data, first_line)
        return Part(tweets, rejects, len(data))

    def _records(self, data: bytes, first_line: int) -> np.ndarray:
        """Line numbers of the chunk's non-empty records (pyarrow skips empty lines)."""
        arr = np.frombuffer(data, np.uint8)
        if not len(arr):
            return np.zeros(0, dtype=np.int64)
        ends = record_ends(data, self.quoted)
        starts = np.concatenate(([0], ends + 1))
        size = np.concatenate((ends, [len(arr)])) - starts
        head = arr[np.minimum(starts, len(arr) - 1)]
        keep = (size > 1) | ((size == 1) & (head != _CR))
        return first_line + np.searchsorted(np.flatnonzero(arr == _NL), starts[keep])

    def _fast(self, data: bytes, first_line: int):
        if self.quoted and (data.count(b'"') % 2 or not _multiline_records_are_well_formed(data)):
            return None  # a stray quote, or one that never closes: the csv module decides, record by record
        invalid: list[tuple[int, int, str]] = []

        def on_invalid(row) -> str:
            invalid.append((row.number, row.actual_columns, row.text))
            return "skip"

        try:
            table = pcsv.read_csv(
                pa.BufferReader(data),
                read_options=pcsv.ReadOptions(use_threads=False, column_names=self.names),
                parse_options=pcsv.ParseOptions(
                    delimiter=self.delimiter,
                    quote_char='"' if self.quoted else False,
                    newlines_in_values=self.quoted,
                    invalid_row_handler=on_invalid,
                ),
                convert_options=pcsv.ConvertOptions(column_types={n: pa.string() for n in self.names}),
            )
        except (pa.ArrowException, ValueError):
            return None
        lines = self._records(data, first_line)
        if table.num_rows + len(invalid) != len(lines) or any(n is None for n, _, _ in invalid):
            return None
        good = np.ones(len(lines), dtype=bool)
        good[np.array([n - 1 for n, _, _ in invalid], dtype=np.int64)] = False
        widths = reject_table(
            self.source_file,
            lines[~good],
            [self._width_reason(count) for _, count, _ in invalid],
            [excerpt(text) for _, _, text in invalid],
        )
        return self._map(table, lines[good], widths)

    def _map(self, table: pa.Table, lines, rejects: pa.Table) -> tuple[pa.Table, pa.Table]:
        """Rows -> tweets; rows that are not usable tweets join `rejects` with the row as excerpt."""
        rows, reasons = canonical(
            self.kind, table, self.options, self.source_file, lines, np.zeros(len(lines), dtype=np.int32)
        )
        bad = pc.is_valid(reasons)
        if pc.any(bad).as_py():
            failed = table.filter(bad)
            texts = [self.delimiter.join(v or "" for v in row.values()) for row in failed.to_pylist()]
            lines = rows.column("source_line").filter(bad)
            mapped = reject_table(self.source_file, lines, reasons.filter(bad), [excerpt(t) for t in texts])
            rejects = pa.concat_tables([rejects, mapped]).sort_by([("source_line", "ascending")])
        return good_rows(rows, reasons), rejects

    def _width_reason(self, count: int) -> str:
        return f"row has {count} fields, expected {len(self.names)}"

    def _slow(self, data: bytes, first_line: int) -> tuple[pa.Table, pa.Table]:
        """Row by row with Python's csv module (authoritative for odd quoting and bad bytes)."""
        lines = re.findall(r"[^\n]*\n|[^\n]+$", data.decode("utf-8", errors="surrogateescape"))
        rows, numbers, bad = [], [], []
        limit = csv.field_size_limit()
        csv.field_size_limit(max(limit, len(data) + 1))  # a long text is a tweet, not an error
        try:
            for start, row, problem in self._rows(lines):
                if problem is not None:
                    bad.append((first_line + start, problem, _unescape(lines[start].rstrip("\r\n"))))
                    continue
                if not row:
                    continue
                joined = self.delimiter.join(row)
                if len(row) != len(self.names):
                    bad.append((first_line + start, self._width_reason(len(row)), _unescape(joined)))
                elif _has_bad_bytes(joined):
                    bad.append((first_line + start, _utf8_reason(joined), _unescape(joined)))
                else:
                    rows.append(row)
                    numbers.append(first_line + start)
        finally:
            csv.field_size_limit(limit)
        columns = list(zip(*rows)) if rows else [()] * len(self.names)
        table = pa.table({n: pa.array(list(c), pa.string()) for n, c in zip(self.names, columns)})
        rejects = reject_table(self.source_file, *zip(*bad)) if bad else REJECT_SCHEMA.empty_table()
        return self._map(table, np.asarray(numbers, dtype=np.int64), rejects)

    def _rows(self, lines: list[str]) -> Iterator[tuple[int, list[str] | None, str | None]]:
        """(index of the record's first line, its fields or None, why not). A quoted field that is still open at
        the end of the data would swallow every line after it: its record is rejected with its first line, and
        reading starts again on the next line."""
        quoting = csv.QUOTE_MINIMAL if self.quoted else csv.QUOTE_NONE
        position = 0
        while position < len(lines):
            reader = csv.reader(lines[position:], delimiter=self.delimiter, quoting=quoting)
            restart, consumed = None, 0
            while True:
                start = position + consumed
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as e:
                    consumed = reader.line_num
                    yield start, None, f"unreadable row: {e}"
                    continue
                spanned = position + reader.line_num - start  # lines this record took
                consumed = reader.line_num
                problem = _malformed("".join(lines[start:start + spanned])) if spanned > 1 else None
                if problem is not None:
                    yield start, None, problem
                    restart = start + 1
                    break
                yield start, row, None
            if restart is None:
                return
            position = restart


def _malformed(record: str) -> str | None:
    """Why a record that spans lines is not a well-formed CSV record (None when it is). A quoted field with a line
    break in it must close before a delimiter or the line's end; one that never closes, or closes in the middle of
    a later field, is a stray quote that has swallowed the lines after it."""
    try:
        list(csv.reader(io.StringIO(record, newline=""), strict=True))
    except csv.Error as e:
        if "unexpected end of data" in str(e):
            return "unterminated quoted field: a quote opened on this line never closes"
        return f"malformed quoted field across lines ({e})"
    return None


def _has_bad_bytes(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _utf8_reason(text: str) -> str:
    column = next(i for i, ch in enumerate(text) if "\udc80" <= ch <= "\udcff")
    return f"invalid UTF-8 (byte 0x{ord(text[column]) - 0xDC00:02x} at column {column + 1})"


def _unescape(text: str) -> str:
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


class _CarriageReturnLines:
    """A stream whose lines end in CR alone (classic Mac, Excel's "CSV (Macintosh)"), read as if they ended in LF."""

    def __init__(self, stream):
        self.stream = stream

    def read(self, n: int = -1) -> bytes:
        return self.stream.read(n).replace(b"\r", b"\n")


def read_delimited(stream, source_file: str, options, delimiter: str) -> Iterator[Part]:
    header = stream.peek_line(1 << 20)
    if not header.strip():
        return
    if b"\n" not in header and b"\r" in header:
        header = header[: header.index(b"\r") + 1]
        stream.read(len(header))
        stream = _CarriageReturnLines(stream)
    else:
        stream.read(len(header))
    text = header.decode("utf-8", errors="replace").rstrip("\r\n")
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    try:
        names = _unique([n.strip() for n in next(csv.reader([text], delimiter=delimiter, quoting=quoting))])
    except csv.Error as e:
        yield Part(TWEET_SCHEMA.empty_table(), one_reject(source_file, 1, f"unreadable header row: {e}", header), 0)
        return
    reader = DelimitedReader(source_file, options, delimiter, names, first_line=2)
    for data, broken in record_chunks(stream, options.batch_bytes, reader.quoted):
        if broken is not None:
            yield Part(
                TWEET_SCHEMA.empty_table(),
                one_reject(source_file, reader.line, f"{broken}; the rest of the file is lost", data),
                len(data),
            )
            return
        yield reader.chunk(data)
