"""Where input bytes come from: path expansion (local or fsspec URIs), fingerprints, and streamed decompression.

Decompression is streamed block by block so a large .gz never sits whole in memory, and a stream that ends early
(or is corrupt) raises `BrokenStream` only after every byte before the break has been handed out, so readers keep
the records before it.
"""

from __future__ import annotations

import bz2
import glob
import lzma
import os
import zlib
from collections.abc import Sequence

import fsspec
import xxhash
import zstandard

from transforms.readers.base import InputError

# Suffixes a directory walk picks up (explicitly named files are read whatever their name).
DATA_SUFFIXES = (".json", ".jsonl", ".ndjson", ".js", ".csv", ".tsv", ".parquet", ".pq")
COMPRESSION_SUFFIXES = {".gz": "gz", ".gzip": "gz", ".bz2": "bz2", ".zst": "zst", ".zstd": "zst", ".xz": "xz"}
MAGIC = {b"\x1f\x8b": "gz", b"\x28\xb5\x2f\xfd": "zst", b"\xfd7zXZ\x00": "xz"}
RAW_BLOCK = 1 << 20
FINGERPRINT_SPAN = 64 << 10


class BrokenStream(Exception):
    """A compressed stream that ends early or is corrupt; everything before it has been read."""


def _is_uri(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _local(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def _wanted(name: str) -> bool:
    """A data file by its suffix, outside hidden and "_"-prefixed files and folders (_SUCCESS, .crc, _temporary)."""
    if any(part.startswith((".", "_")) for part in name.split("/") if part):
        return False
    stem = os.path.basename(name)
    for suffix in COMPRESSION_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem.lower().endswith(DATA_SUFFIXES)


def _expand_one(path: str) -> list[str]:
    has_glob = any(ch in path for ch in "*?[")
    if _is_uri(path):
        fs, root = fsspec.core.url_to_fs(path)
        protocol = path.split("://", 1)[0]
        if fs.isfile(root):
            return [path]
        if has_glob:
            found = []
            for hit in fs.glob(root):
                found += [fs.unstrip_protocol(f) for f in fs.find(hit)] if fs.isdir(hit) else [fs.unstrip_protocol(hit)]
            if not found:
                raise InputError(f"input not found: no file matches {path}")
            return sorted(found)
        if fs.isdir(root):
            prefix, base = path.rstrip("/"), root.rstrip("/")
            return _nonempty(sorted(prefix + f[len(base) :] for f in fs.find(root) if _wanted(f[len(base) :])), path)
        raise InputError(f"input not found: {path} ({protocol} filesystem)")
    local = _local(path)
    if os.path.isfile(local):
        return [local]
    if has_glob:
        hits = sorted(glob.glob(local, recursive=True))
        found = [f for hit in hits for f in (_walk(hit) if os.path.isdir(hit) else [hit])]
        if not found:
            raise InputError(f"input not found: no file matches {path}")
        return sorted(found)
    if os.path.isdir(local):
        return _nonempty(_walk(local), path)
    raise InputError(f"input not found: {path}")


def _nonempty(files: list[str], folder: str) -> list[str]:
    """A folder given as input must hold data files: an empty one is a wrong path, as a glob matching nothing is."""
    if not files:
        raise InputError(f"input not found: no data files in the folder {folder}")
    return files


def _walk(directory: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
        found += [os.path.join(root, f) for f in files if _wanted(f)]  # folders were pruned above
    return sorted(found)


def expand_inputs(paths: Sequence[str]) -> list[str]:
    """Files, globs, directories (recursive, data files only) and fsspec URIs -> files in a deterministic order.

    Each argument's files are sorted; arguments keep their order; a file named twice is read once.
    """
    if isinstance(paths, str):
        paths = [paths]
    seen: dict[str, None] = {}
    for path in paths:
        for found in _expand_one(str(path)):
            seen.setdefault(found, None)
    return list(seen)


def open_raw(path: str):
    """The file's bytes as stored (still compressed); InputError when it cannot be opened."""
    try:
        if _is_uri(path):
            return fsspec.open(path, "rb").open()
        return open(_local(path), "rb")
    except FileNotFoundError:
        raise InputError(f"input not found: {path}") from None
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None


def _stat(path: str) -> tuple[int, int]:
    if _is_uri(path):
        fs, root = fsspec.core.url_to_fs(path)
        info = fs.info(root)
        mtime = info.get("mtime") or info.get("LastModified") or info.get("created") or 0
        mtime = mtime.timestamp() if hasattr(mtime, "timestamp") else float(mtime)
        return int(info.get("size") or 0), int(mtime * 1e9)
    st = os.stat(_local(path))
    return st.st_size, st.st_mtime_ns


def file_size(path: str) -> int:
    """Stored bytes, from the file system's metadata (the file is not opened)."""
    return _stat(path)[0]


def fingerprint(path: str) -> str:
    """Cheap and stable: size, mtime and an xxh64 of the first and last 64 KiB of the stored bytes."""
    try:
        size, mtime_ns = _stat(path)
    except FileNotFoundError:
        raise InputError(f"input not found: {path}") from None
    digest = xxhash.xxh64()
    with open_raw(path) as f:
        digest.update(f.read(FINGERPRINT_SPAN))
        if size > 2 * FINGERPRINT_SPAN:
            f.seek(size - FINGERPRINT_SPAN)
            digest.update(f.read(FINGERPRINT_SPAN))
        elif size > FINGERPRINT_SPAN:
            digest.update(f.read())
    return f"{size:x}-{mtime_ns:x}-{digest.hexdigest()}"


def compression_of(path: str, head: bytes) -> str | None:
    """By suffix, else by an unambiguous magic number (bzip2's ASCII magic is trusted only by suffix)."""
    lower = path.lower()
    for suffix, codec in COMPRESSION_SUFFIXES.items():
        if lower.endswith(suffix):
            return codec
    for magic, codec in MAGIC.items():
        if head.startswith(magic):
            return codec
    return None


def strip_compression_suffix(path: str) -> str:
    lower = path.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            return path[: -len(suffix)]
    return path


DECOMPRESS_ERRORS = (zlib.error, OSError, lzma.LZMAError, zstandard.ZstdError, EOFError)  # what a bad stream raises


def _decompressor(codec: str):
    if codec == "gz":
        return zlib.decompressobj(wbits=47)  # gzip or zlib header
    if codec == "bz2":
        return bz2.BZ2Decompressor()
    if codec == "xz":
        return lzma.LZMADecompressor()
    return zstandard.ZstdDecompressor().decompressobj()


class Decompressed:
    """`read(n)` over a compressed stream (multi-member/multi-frame aware) that notices an early end.

    All four codecs go through the same decompressor-object loop because zstandard's stream reader silently
    returns short data on a truncated frame, while the loop can check each decompressor's end-of-stream flag.
    """

    def __init__(self, raw, codec: str):
        self.raw, self.codec = raw, codec
        self.dec = _decompressor(codec)
        self.buf = bytearray()
        self.fed = False  # bytes went into the current member since it started
        self.done = False
        self.error: BrokenStream | None = None

    def _fill(self) -> None:
        block = self.raw.read(RAW_BLOCK)
        if not block:
            self.done = True
            if self.fed and not self.dec.eof:
                self.error = BrokenStream(f"truncated {self.codec} stream: it ends before its end-of-stream marker")
            return
        try:
            while block:
                self.buf += self.dec.decompress(block)
                self.fed = True
                block = b""
                if self.dec.eof:
                    rest = self.dec.unused_data
                    self.dec = _decompressor(self.codec)
                    self.fed = False
                    if rest.strip(b"\x00"):
                        block = rest
        except DECOMPRESS_ERRORS as e:
            self.done = True
            self.error = BrokenStream(f"corrupt {self.codec} stream: {e}")

    def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes (all when n < 0); the break, if any, is raised once the bytes before it are out."""
        while self.error is None and not self.done and (n < 0 or len(self.buf) < n):
            self._fill()
        if not self.buf and self.error is not None:
            error, self.error = self.error, None
            raise error
        if n < 0 or n >= len(self.buf):
            out = bytes(self.buf)
            self.buf.clear()
        else:
            out = bytes(self.buf[:n])
            del self.buf[:n]
        return out

    def close(self) -> None:
        self.raw.close()


class Peekable:
    """A byte stream whose head can be looked at before reading; a break met while peeking is raised in order."""

    def __init__(self, stream):
        self.stream = stream
        self.head = b""
        self.error: BrokenStream | None = None

    def peek(self, n: int) -> bytes:
        while len(self.head) < n and self.error is None:
            try:
                more = self.stream.read(n - len(self.head))
            except BrokenStream as e:
                self.error = e
                break
            if not more:
                break
            self.head += more
        return self.head[:n]

    def peek_line(self, limit: int) -> bytes:
        """The head up to and including the first newline (or `limit` bytes, or all there is)."""
        size = 1 << 16
        while True:
            head = self.peek(size)
            cut = head.find(b"\n")
            if cut >= 0:
                return head[: cut + 1]
            if len(head) < size or size >= limit:
                return head
            size *= 4

    def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes (all when n < 0); b"" only at the end; a break is raised once the bytes before it are out."""
        if not self.head:
            return self._read(n)
        if 0 <= n <= len(self.head):
            out, self.head = self.head[:n], self.head[n:]
            return out
        out, self.head = self.head, b""
        try:
            return out + self._read(n - len(out) if n >= 0 else -1)
        except BrokenStream as e:
            self.error = e
            return out

    def _read(self, n: int) -> bytes:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return self.stream.read(n)

    def close(self) -> None:
        self.stream.close()


def open_input(path: str) -> Peekable:
    """Decompressed, peekable bytes of one input."""
    raw = open_raw(path)
    try:
        head = raw.read(8)
        raw.seek(0)
    except OSError as e:
        raw.close()
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    codec = compression_of(path, head)
    if codec is not None and strip_compression_suffix(path) == path and not _decodes(raw, codec):
        codec = None  # a magic number by chance (a text file that starts with those bytes): read it as it is
    return Peekable(Decompressed(raw, codec) if codec else raw)


def _decodes(raw, codec: str) -> bool:
    """Whether the start of a file without a compression suffix really is `codec` data (then rewound)."""
    try:
        _decompressor(codec).decompress(raw.read(RAW_BLOCK))
        return True
    except DECOMPRESS_ERRORS:
        return False
    finally:
        raw.seek(0)
