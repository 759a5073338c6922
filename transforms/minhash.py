"""MinHash near-duplicate detection built for tweets, vectorized over whole batches.

A batch goes: dedupe key -> `fold` (mentions, links, "RT @x:" anywhere, punctuation, emoji and case removed) ->
character n-gram hashes (`shingle_hashes`, CSR layout) -> `signatures` in datasketch 2.0's default "affine32"
permutation scheme (so datasketch can check them bit for bit) -> LSH `band_keys`. `lsh_params` picks bands x rows
for a Jaccard threshold. `history_state` / `history_keys` are the persisted state for deduping against earlier versions.

Short texts: a folded text shorter than one n-gram is one shingle (the whole text), so "ok" still gets a proper
signature. Empty folded texts (only links, mentions, emoji) have no shingles: their signature is datasketch's empty
one (all 2^32-1) and they get no band keys, so they are never grouped here. They carry no words to compare, and
grouping them would merge every emoji-only tweet into one cluster; exact dedupe still catches identical ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from transforms.hashing import splitmix64

FOLD_VERSION = 1  # bump when `fold` or the shingle hash changes: persisted signatures become incomparable
MAX_HASH = np.uint32(0xFFFFFFFF)  # the value of an empty signature, as in datasketch
_P64 = np.uint64(0x100000001B3)  # Horner multiplier of the n-gram hash (odd)
_BLOCK_ROWS = 4096  # rows per hashing step: temporaries stay small and cache-resident
_SIG_CHUNK = 16384  # shingles per permutation step: a (num_perm x chunk) uint32 block fits in L2/L3


# --------------------------------------------------------------------------------------------------------- folding


def fold(keys: pa.Array | pa.ChunkedArray) -> pa.LargeStringArray:
    """Fold normalize-stage dedupe keys to the text that is shingled (nulls fold to empty).

    - NFKC (fancy Unicode fonts, full-width letters), applied only to rows that are not pure ASCII;
    - lowercase; "RT @user:" / "via @user" anywhere (retweets with a comment), mentions and "http" link masks removed;
    - every run of characters other than letters, digits and marks (punctuation, emoji, "…", "#") becomes one space.
    """
    text = pl.from_arrow(keys).cast(pl.String).fill_null("")
    wide = text.str.contains(r"[^\x00-\x7F]")
    if wide.any():
        text = text.scatter(wide.arg_true(), text.filter(wide).str.normalize("NFKC"))
    folded = (
        text.str.to_lowercase()
        .str.replace_all(r"\b(?:rt|via)\s*@[\p{L}\p{N}_]+:?", " ")
        .str.replace_all(r"@[\p{L}\p{N}_]+", " ")
        .str.replace_all(r"\bhttps?\b", " ")
        .str.replace_all(r"[^\p{L}\p{N}\p{M}]+", " ")
        .str.strip_chars()
        .to_arrow()
    )
    if isinstance(folded, pa.ChunkedArray):
        folded = folded.combine_chunks()
    return folded.cast(pa.large_string())


# ------------------------------------------------------------------------------------------------------- shingles


def _codepoints(values: pa.LargeStringArray) -> tuple[np.ndarray, np.ndarray]:
    """Code points of a whole array at once, (uint32 code points, int64 char offsets per row): the UTF-8 buffer is
    decoded and re-encoded as UTF-32 by CPython's codecs, two C passes and no per-row Python objects."""
    n = len(values)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)[values.offset : values.offset + n + 1]
    buf = values.buffers()[2]
    raw = memoryview(buf)[offsets[0] : offsets[-1]] if buf is not None else b""
    cps = np.frombuffer(str(raw, "utf-8").encode("utf-32-le"), dtype=np.uint32)
    lengths = pc.utf8_length(values).to_numpy(zero_copy_only=False)
    return cps, np.concatenate(([0], np.cumsum(lengths, dtype=np.int64)))


def shingle_hashes(folded: pa.LargeStringArray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """uint32 hashes of each row's character n-grams, and int64 offsets: row i owns hashes[offsets[i]:offsets[i+1]].

    A row of 1..ngram-1 characters has one shingle, its whole text; an empty row has none. Duplicate n-grams
    within a row are kept (a minimum does not care).
    """
    parts, counts = [], []
    for start in range(0, len(folded), _BLOCK_ROWS):
        h, c = _block_shingles(folded.slice(start, _BLOCK_ROWS), ngram)
        parts.append(h)
        counts.append(c)
    counts = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    offsets = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
    return (np.concatenate(parts) if parts else np.zeros(0, np.uint32)), offsets


def _block_shingles(values: pa.LargeStringArray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    cps, offsets = _codepoints(values)
    starts, ends = offsets[:-1], offsets[1:]
    lengths = ends - starts
    total = len(cps)
    padded = np.empty(total + ngram, dtype=np.uint64)
    padded[:total] = cps
    padded[total:] = 0
    padded += np.uint64(1)  # so that code point 0 still counts
    # Horner over the window starting at every character (in place: these are the hot arrays) ...
    h = padded[:total].copy()
    with np.errstate(over="ignore"):
        for j in range(1, ngram):
            h *= _P64
            h += padded[j : j + total]
        # ... and over the whole text of rows shorter than one window
        short_rows = np.flatnonzero((lengths > 0) & (lengths < ngram))
        short = np.zeros(len(short_rows), dtype=np.uint64)
        for j in range(ngram - 1):
            step = short * _P64 + padded[np.minimum(starts[short_rows] + j, total)]
            short = np.where(j < lengths[short_rows], step, short)
    # windows that run past their row's end are dropped: the last ngram-1 starts of every row
    keep = np.ones(total, dtype=bool)
    for j in range(1, ngram):
        tail = ends - j
        keep[tail[tail >= starts]] = False
    keep[starts[short_rows]] = True
    h[starts[short_rows]] = short
    h = h[keep]
    h ^= h >> np.uint64(32)  # high half folded onto the low half
    counts = np.where(lengths >= ngram, lengths - ngram + 1, (lengths > 0).astype(np.int64))
    return h.astype(np.uint32), counts


# ----------------------------------------------------------------------------------------------------- signatures


@lru_cache(maxsize=16)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of datasketch's affine32 scheme: the same draws from np.random.RandomState(seed), a odd."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's finalizer: datasketch pre-mixes every input hash with it before permuting."""
    h = h.astype(np.uint32)
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint32(16))
        h = h * np.uint32(0x85EBCA6B)
        h = h ^ (h >> np.uint32(13))
        h = h * np.uint32(0xC2B2AE35)
        return h ^ (h >> np.uint32(16))


def signatures(hashes: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """(rows, num_perm) uint32 MinHash signatures: min over a row's shingles of a*fmix32(h)+b mod 2^32.

    Equal to datasketch.MinHash(num_perm, seed).update_batch(...) given the same shingle hashes. Works in blocks of
    whole rows laid out (num_perm x shingles), so the multiply, add and segmented minimum run over contiguous memory.
    """
    n = len(offsets) - 1
    a, b = permutations(num_perm, seed)
    out = np.full((n, num_perm), MAX_HASH, dtype=np.uint32)
    x = fmix32(hashes)
    nonempty = np.flatnonzero(np.diff(offsets) > 0)
    starts, ends = offsets[nonempty], offsets[nonempty + 1]
    block = np.empty((num_perm, _SIG_CHUNK), dtype=np.uint32)
    lo = 0
    while lo < len(nonempty):
        end_row = max(int(np.searchsorted(ends, starts[lo] + _SIG_CHUNK, side="right")), lo + 1)
        s, e = starts[lo], ends[end_row - 1]
        m = block[:, : e - s] if e - s <= _SIG_CHUNK else np.empty((num_perm, e - s), dtype=np.uint32)
        with np.errstate(over="ignore"):
            np.multiply(a[:, None], x[None, s:e], out=m)
            np.add(m, b[:, None], out=m)
        out[nonempty[lo:end_row]] = np.minimum.reduceat(m, starts[lo:end_row] - s, axis=1).T
        lo = end_row
    return out


def sketch(folded: pa.LargeStringArray, ngram: int, num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(signatures, has_shingles) of a folded column, `_BLOCK_ROWS` rows at a time: shingle hashes live only for
    their block, so a part of a few hundred thousand tweets never holds all its shingles at once."""
    n = len(folded)
    sigs = np.empty((n, num_perm), dtype=np.uint32)
    present = np.empty(n, dtype=bool)
    for start in range(0, n, _BLOCK_ROWS):
        hashes, offsets = shingle_hashes(folded.slice(start, _BLOCK_ROWS), ngram)
        end = start + len(offsets) - 1
        sigs[start:end] = signatures(hashes, offsets, num_perm, seed)
        present[start:end] = np.diff(offsets) > 0
    return sigs, present


def payload(sigs: np.ndarray) -> np.ndarray:
    """The low 8 bits of each signature slot (b-bit MinHash, Li and König 2010): a quarter of the memory, and the
    Jaccard estimate stays as good once chance matches are corrected for (see estimated_jaccard)."""
    return sigs.astype(np.uint8)


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise MinHash estimate of Jaccard similarity from full signatures or b-bit payloads: the share of equal
    slots, less the 2^-bits chance that two different values agree."""
    match = np.count_nonzero(a == b, axis=1) / a.shape[1]
    chance = 0.5 ** (8 * a.dtype.itemsize)
    return (match - chance) / (1.0 - chance)


# ------------------------------------------------------------------------------------------------------ LSH bands


@dataclass(frozen=True)
class LshParams:
    """bands x rows and their errors at `threshold`, as datasketch defines them: false_positive is the area under the
    candidate-probability curve below the threshold, false_negative the area above it missed."""

    bands: int
    rows: int
    threshold: float
    false_positive: float
    false_negative: float


def candidate_probability(similarity: np.ndarray | float, bands: int, rows: int) -> np.ndarray:
    """P(two rows with this Jaccard similarity share at least one band key) = 1 - (1 - s^r)^b."""
    return 1.0 - (1.0 - np.asarray(similarity, dtype=float) ** rows) ** bands


def _areas(threshold: float, bands: np.ndarray, rows: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact (false_positive, false_negative) areas: the integrands are polynomials of degree b*r <= `degree`,
    which Gauss-Legendre with degree//2 + 1 nodes integrates exactly."""
    nodes, weights = np.polynomial.legendre.leggauss(degree // 2 + 1)

    def integral(lo: float, hi: float, f) -> np.ndarray:
        s = (hi - lo) / 2 * nodes + (hi + lo) / 2
        return (hi - lo) / 2 * (f(s[None, :]) @ weights)

    b, r = bands[:, None].astype(float), rows[:, None].astype(float)
    fp = integral(0.0, threshold, lambda s: 1.0 - (1.0 - s**r) ** b)
    fn = integral(threshold, 1.0, lambda s: (1.0 - s**r) ** b)
    return fp, fn


@lru_cache(maxsize=64)
def lsh_params(
    threshold: float,
    num_perm: int,
    bands: int | None = None,
    rows: int | None = None,
    false_positive_weight: float = 0.5,
    false_negative_weight: float = 0.5,
) -> LshParams:
    """bands x rows (b*r <= num_perm) minimising the weighted error areas at `threshold`, or the given override."""
    if bands is not None and rows is not None:
        b, r = np.array([bands]), np.array([rows])
    else:
        b, r = np.divmod(np.arange(num_perm * num_perm), num_perm)
        b, r = b + 1, r + 1
        fits = b * r <= num_perm
        b, r = b[fits], r[fits]
    fp, fn = _areas(threshold, b, r, num_perm)
    best = int(np.argmin(false_positive_weight * fp + false_negative_weight * fn))
    return LshParams(int(b[best]), int(r[best]), threshold, float(fp[best]), float(fn[best]))


def band_keys(sigs: np.ndarray, bands: int, rows: int, present: np.ndarray | None = None) -> pa.Table:
    """Long table (row int64, band int32, key uint64): one 64-bit hash per band of each row's signature.

    Rows where `present` is False (empty texts) get no keys. Rows are numbered within `sigs`.
    """
    h = np.zeros((len(sigs), bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(rows):  # Horner over each band's slots (slot j of every band is the stride-`rows` view) ...
            h *= _P64
            h += sigs[:, j : bands * rows : rows]
    h = splitmix64(h)  # ... then one avalanche
    idx = np.arange(len(sigs)) if present is None else np.flatnonzero(present)
    if present is not None:
        h = h[idx]
    return pa.table(
        {
            "row": pa.array(np.repeat(idx.astype(np.int64), bands)),
            "band": pa.array(np.tile(np.arange(bands, dtype=np.int32), len(idx))),
            "key": pa.array(h.ravel()),
        }
    )


# ------------------------------------------------------------------------------------------- persisted state


def _state_meta(num_perm: int, seed: int, ngram: int) -> dict[bytes, bytes]:
    info = {"num_perm": num_perm, "seed": seed, "ngram": ngram, "fold_version": FOLD_VERSION}
    return {b"tweetmill.minhash": json.dumps(info, sort_keys=True).encode()}


def history_state(
    ids: pa.Array, created_at: pa.Array, sigs: np.ndarray, present: np.ndarray, *, num_perm: int, seed: int, ngram: int
) -> pa.Table:
    """What to persist for published rows so a later version dedupes against them: (id, created_at, signature),
    one row per published tweet that had a signature, with the scheme in the schema metadata.

    Signatures rather than band keys: a later run may change threshold or bands and still reuse them.
    """
    keep = np.flatnonzero(present)
    width = 4 * sigs.shape[1]
    data = pa.py_buffer(np.ascontiguousarray(sigs[keep]))
    sig_bin = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(keep), [None, data])
    table = pa.table({"id": pc.take(ids, keep), "created_at": pc.take(created_at, keep), "signature": sig_bin})
    return table.replace_schema_metadata(_state_meta(num_perm, seed, ngram))


def check_history_scheme(schema: pa.Schema, *, num_perm: int, seed: int, ngram: int) -> None:
    """ValueError when persisted state with this schema was made with another scheme: its signatures cannot be
    compared with this run's."""
    meta = (schema.metadata or {}).get(b"tweetmill.minhash")
    expected = _state_meta(num_perm, seed, ngram)[b"tweetmill.minhash"]
    if meta is None or json.loads(meta) != json.loads(expected):
        made = json.loads(meta) if meta is not None else "an unknown scheme"
        raise ValueError(f"the table's MinHash history was made with {made}, this config uses "
                         f"{json.loads(expected)}: append with the settings the table was made with, or start a new "
                         "table (or --mode overwrite)")


def history_signatures(state: pa.Table, *, num_perm: int, seed: int, ngram: int) -> np.ndarray:
    """The (rows, num_perm) signatures of a persisted state; refuses state made with another scheme."""
    check_history_scheme(state.schema, num_perm=num_perm, seed=seed, ngram=ngram)
    column = state.column("signature").combine_chunks()
    return np.frombuffer(column.buffers()[1], dtype=np.uint32)[
        column.offset * num_perm : (column.offset + len(column)) * num_perm
    ].reshape(len(column), num_perm)


def history_keys(state: pa.Table, params: LshParams, *, num_perm: int, seed: int, ngram: int) -> pa.Table:
    """Band keys (row = position in `state`) of the persisted rows, for this run's bands x rows."""
    return band_keys(history_signatures(state, num_perm=num_perm, seed=seed, ngram=ngram), params.bands, params.rows)
