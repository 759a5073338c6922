"""read_inputs: expand the paths, detect each file's format, run its reader, and hand out bounded batches.

Detection looks at the name without its compression suffix (.csv, .tsv, .parquet, and .jsonl/.ndjson for JSON
lines), then at the first decompressed bytes: "PAR1" is Parquet, `window.` an account archive, `[` a JSON document,
`{` JSON lines when the first line parses on its own (else one pretty-printed document).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import orjson
import pyarrow as pa

from transforms.readers import classify
from transforms.readers.base import Part, ReadBatch, ReaderOptions, one_reject
from transforms.readers.delimited import read_delimited
from transforms.readers.documents import read_document
from transforms.readers.jsonl import read_jsonl
from transforms.readers.parquet import read_parquet
from transforms.readers.sources import BrokenStream, compression_of, expand_inputs, open_input, open_raw
from transforms.readers.sources import strip_compression_suffix
from transforms.schema import REJECT_SCHEMA, TWEET_SCHEMA

BOM = b"\xef\xbb\xbf"
SNIFF_BYTES = 1 << 16
FIRST_LINE_LIMIT = 64 << 20  # a first line longer than this is read as one document


def detect(path: str, stream, forced: str | None) -> str:
    """"lines" | "document" | "csv" | "tsv" | "parquet" for one opened input."""
    if forced in ("csv", "tsv", "parquet"):
        return forced
    name = strip_compression_suffix(path).lower()
    if forced is None:
        for suffixes, kind in (((".csv",), "csv"), ((".tsv", ".tab"), "tsv"), ((".parquet", ".pq"), "parquet"),
                               ((".jsonl", ".ndjson"), "lines")):
            if name.endswith(suffixes):
                return kind
    head = stream.peek(SNIFF_BYTES)
    if head.startswith(b"PAR1") and forced is None:
        return "parquet"
    text = head.lstrip()
    if text.startswith(b"window.") or text.startswith(b"["):
        return "document"
    if forced == "jsonl" or not text.startswith(b"{"):
        return "lines"
    first = stream.peek_line(FIRST_LINE_LIMIT)
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        return "document"
    return "lines"


def _read_all(stream, source_file: str) -> tuple[bytes, Part | None]:
    """The whole (decompressed) input; for a broken stream, the reject that stands for it."""
    try:
        content = stream.read(-1)
        stream.read(1)  # a break met while reading surfaces on the next read
        return content, None
    except BrokenStream as e:
        reject = one_reject(source_file, 1, f"{e}; the document is lost")
        return b"", Part(TWEET_SCHEMA.empty_table(), reject, 0)


def read_file(path: str, options: ReaderOptions) -> Iterator[Part]:
    """Parts of one input file, in order."""
    forced = classify.FORCED.get(options.format)
    stream = open_input(path)
    try:
        if stream.peek(3) == BOM:
            stream.read(3)
        mode = detect(path, stream, options.format)
        if mode == "lines":
            yield from read_jsonl(stream, path, options, forced)
        elif mode == "csv" or mode == "tsv":
            yield from read_delimited(stream, path, options, "," if mode == "csv" else "\t")
        elif mode == "parquet":
            if compression_of(path, stream.peek(8)) is None:
                with open_raw(path) as raw:
                    yield from read_parquet(raw, path, options)
            else:  # a compressed Parquet file has to be decompressed whole to be seekable
                content, broken = _read_all(stream, path)
                yield from [broken] if broken is not None else read_parquet(content, path, options)
        else:
            content, broken = _read_all(stream, path)
            if broken is not None:
                yield broken
                return
            part = read_document(content, path, options, forced)
            if part is not None:
                yield part
            else:
                yield from read_jsonl(_Bytes(content), path, options, forced)
    finally:
        stream.close()


class _Bytes:
    """Bytes already in memory, as the stream read_jsonl expects."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        out, self.pos = self.data[self.pos : end], min(end, len(self.data))
        return out


def _batches(files: list[str], options: ReaderOptions) -> Iterator[ReadBatch]:
    tweets: list[pa.Table] = []
    rejects: list[pa.Table] = []
    size = 0
    for path in files:
        for part in read_file(path, options):
            if part.tweets.num_rows:
                tweets.append(part.tweets)
            if part.rejects.num_rows:
                rejects.append(part.rejects)
            size += part.nbytes
            if size >= options.batch_bytes:
                yield _batch(tweets, rejects)
                tweets, rejects, size = [], [], 0
    if tweets or rejects:
        yield _batch(tweets, rejects)


def _batch(tweets: list[pa.Table], rejects: list[pa.Table]) -> ReadBatch:
    return ReadBatch(
        tweets=pa.concat_tables(tweets) if tweets else TWEET_SCHEMA.empty_table(),
        rejects=pa.concat_tables(rejects) if rejects else REJECT_SCHEMA.empty_table(),
    )


def read_inputs(paths: Sequence[str], options: ReaderOptions = ReaderOptions()) -> Iterator[ReadBatch]:
    """Batches of canonical tweets and rejects from every input, in input order.

    Paths are expanded (and checked) before anything is read, so a missing path raises InputError at once."""
    return _batches(expand_inputs(paths), options)
