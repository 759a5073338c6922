"""Stable 64-bit hashes of whole string columns, vectorized over the Arrow buffers.

Stable across engines, processes and library upgrades (unlike polars' or Spark's own hash functions), so keys can be
persisted beside a table and compared by any engine. A polynomial hash over the UTF-8 bytes (mod 2^64), mixed with
the length and finished with splitmix64.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_P = np.uint64(0x100000001B3)  # odd multiplier (the FNV prime)
_POWERS_CACHE: dict[int, np.ndarray] = {}


def _powers(n: int) -> np.ndarray:
    size = 1 << max(10, int(n).bit_length())
    if size not in _POWERS_CACHE:
        with np.errstate(over="ignore"):
            p = np.empty(size, dtype=np.uint64)
            p[0] = 1
            for shift in range(size.bit_length() - 1):  # doubling: p[k..2k) = p[0..k) * P^k
                k = 1 << shift
                p[k : 2 * k] = p[:k] * (p[k - 1] * _P)
        _POWERS_CACHE[size] = p
    return _POWERS_CACHE[size]


def _positions(n: int) -> np.ndarray:
    global _POSITIONS
    if len(_POSITIONS) < n:
        _POSITIONS = np.arange(max(n, 2 * len(_POSITIONS)), dtype=np.int64)
    return _POSITIONS[:n]


_POSITIONS = np.arange(1 << 20, dtype=np.int64)


def splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


_CHUNK = 4096  # strings per step: small temporaries are reused by the allocator instead of page-faulted anew


def hash64(values: pa.Array | pa.ChunkedArray, seed: int = 0) -> np.ndarray:
    """uint64 hash per string (nulls hash like the empty string); equal strings give equal hashes everywhere."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    values = pc.fill_null(values.cast(pa.large_string()), "")
    out = np.empty(len(values), dtype=np.uint64)
    for i in range(0, len(values), _CHUNK):
        out[i : i + _CHUNK] = _hash_chunk(values.slice(i, _CHUNK), seed)
    return out


def _hash_chunk(values: pa.LargeStringArray, seed: int) -> np.ndarray:
    n = len(values)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)[values.offset : values.offset + n + 1]
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8) if values.buffers()[2] is not None else np.zeros(0, np.uint8)
    start, end = offsets[0], offsets[-1]
    lengths = np.diff(offsets)
    with np.errstate(over="ignore"):
        # position of each byte counted from the end of its string: weight P^(len-1-i)
        back = np.repeat(offsets[1:] - start - 1, lengths)
        back -= _positions(len(back))
        terms = _powers(int(lengths.max(initial=0)))[back]
        terms *= data[start:end]
        terms += _powers(int(lengths.max(initial=0)))[back]  # + weight: byte value b counts as b + 1
        sums = np.zeros(n, dtype=np.uint64)
        nonempty = lengths > 0
        if nonempty.any():
            sums[nonempty] = np.add.reduceat(terms, (offsets[:-1] - start)[nonempty])
        mixed = sums ^ (lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ splitmix64(np.full(1, seed, np.uint64))
    return splitmix64(mixed)
