"""fastText supervised training that gives the same model bit for bit on every run: the one fitting helper both
trainers use.

Determinism needs one training thread and a fixed seed, and one more thing. With thread < 10 fastText (0.9.x, and
fasttext-numpy2) initialises only the first tenth of its input matrix (DenseMatrix::uniform splits the work into ten
blocks, one per thread) and leaves the rest as the allocator hands it over: zeros from fresh pages, leftovers of
earlier allocations from a reused heap chunk. Leftovers make runs differ, or end in "Encountered NaN". So while
fastText trains, glibc fills the blocks it hands out with zeros (mallopt M_PERTURB, as MALLOC_PERTURB_ would; all but
the sub-KiB ones its per-thread cache serves, and a matrix is far larger): the matrix is the same as in a fresh
process, whatever ran before. tests/test_toxicity.py checks this after churning the heap.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
from pathlib import Path

import fasttext

_M_PERTURB = -6  # glibc's mallopt parameter: fill allocated blocks with ~byte, freed ones with byte
_FREED_FILL = 0xFF  # so allocated blocks read as zeros


@contextlib.contextmanager
def _zeroed_allocations():
    mallopt = getattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallopt", None)
    if mallopt is None or mallopt(_M_PERTURB, _FREED_FILL) != 1:
        raise RuntimeError("reproducible fastText training needs glibc's mallopt (transforms/training/fasttext_fit.py)")
    try:
        yield
    finally:
        mallopt(_M_PERTURB, 0)


def fit(train_file: Path, seed: int, quantize: dict | None = None, **params):
    """A supervised fastText model from `train_file` on one thread; `params` are train_supervised's (dim, epoch,
    lr, wordNgrams, minn, maxn, bucket, loss, ...); `quantize`, if given, are quantize()'s (cutoff, dsub, qnorm,
    retrain), run on the same file."""
    with _zeroed_allocations():
        model = fasttext.train_supervised(input=str(train_file), seed=seed, thread=1, verbose=0, **params)
        if quantize is not None:
            model.quantize(input=str(train_file), thread=1, **quantize)
    return model
