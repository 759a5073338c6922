"""CSV and TSV files with a header row, read in chunks of whole records by pyarrow's CSV reader.

Record boundaries and their line numbers come from one numpy pass (a newline ends a record when an even number of
quote characters precedes it). Rows with the wrong number of fields are caught by pyarrow's invalid-row handler
and become rejects. Where pyarrow and that count disagree (stray quotes inside a field) or a chunk holds invalid
UTF-8, Python's csv module re-reads that chunk row by row and is authoritative.
"""

from __future__ import annotations

import csv
import io
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
        text = io.StringIO(data.decode("utf-8", errors="surrogateescape"), newline="")
        reader = csv.reader(
            text, delimiter=self.delimiter, quoting=csv.QUOTE_MINIMAL if self.quoted else csv.QUOTE_NONE
        )
        rows, lines, bad = [], [], []
        consumed = 0
        while True:
            start = first_line + consumed
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                bad.append((start, f"unreadable row: {e}", ""))
                consumed = reader.line_num
                continue
            consumed = reader.line_num
            if not row:
                continue
            joined = self.delimiter.join(row)
            if len(row) != len(self.names):
                bad.append((start, self._width_reason(len(row)), _unescape(joined)))
            elif _has_bad_bytes(joined):
                bad.append((start, _utf8_reason(joined), _unescape(joined)))
            else:
                rows.append(row)
                lines.append(start)
        columns = list(zip(*rows)) if rows else [()] * len(self.names)
        table = pa.table({n: pa.array(list(c), pa.string()) for n, c in zip(self.names, columns)})
        rejects = reject_table(self.source_file, *zip(*bad)) if bad else REJECT_SCHEMA.empty_table()
        return self._map(table, np.asarray(lines, dtype=np.int64), rejects)


def _has_bad_bytes(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _utf8_reason(text: str) -> str:
    column = next(i for i, ch in enumerate(text) if "\udc80" <= ch <= "\udcff")
    return f"invalid UTF-8 (byte 0x{ord(text[column]) - 0xDC00:02x} at column {column + 1})"


def _unescape(text: str) -> str:
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def read_delimited(stream, source_file: str, options, delimiter: str) -> Iterator[Part]:
    header = stream.peek_line(1 << 20)
    if not header.strip():
        return
    stream.read(len(header))
    text = header.decode("utf-8", errors="replace").rstrip("\r\n")
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    names = _unique([n.strip() for n in next(csv.reader([text], delimiter=delimiter, quoting=quoting))])
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
