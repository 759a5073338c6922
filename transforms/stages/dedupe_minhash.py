"""dedupe_minhash: drop near-duplicate tweets (retweets with a comment, appended links/hashtags/emoji, truncation
with "…", case and punctuation changes, one-word edits) with MinHash LSH over character n-grams of the folded
dedupe key. The algorithm lives in transforms/minhash.py; this module is the stage contract around it.

Rows that share an LSH band key are candidates; with `verify` on, a candidate pair is joined only when its
estimated Jaccard similarity (from an 8-bit-per-slot payload) reaches the threshold, which removes most of the LSH
false positives. Empty folded texts (only links, mentions or emoji) are never grouped here: exact dedupe owns them.

Defaults (5-character shingles, threshold 0.5, verify) were chosen on the dev split of bench/near_dup_eval.py: tweets
are short, so one changed word moves the Jaccard of character shingles a lot, and 0.5 with verification kept
precision at 0.998 where 0.6-0.7 lost 1-4% recall; without verification 0.5 loses 3% precision.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from transforms import minhash
from transforms.stages.base import DedupeStage, StageConfig


class MinHashConfig(StageConfig):
    threshold: float = Field(0.5, gt=0.0, lt=1.0)  # Jaccard similarity of the shingle sets that makes a duplicate
    num_perm: int = Field(128, ge=2, le=1024)
    bands: int | None = Field(None, ge=1)  # bands x rows override; default: chosen for the threshold
    rows: int | None = Field(None, ge=1)
    ngram: int = Field(5, ge=1, le=16)  # characters per shingle
    seed: int = Field(1, ge=0, lt=2**32)
    verify: bool = True  # check candidate pairs' estimated Jaccard against the threshold

    @model_validator(mode="after")
    def _bands_fit(self) -> MinHashConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give both bands and rows, or neither")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self

    @property
    def lsh(self) -> minhash.LshParams:
        return minhash.lsh_params(self.threshold, self.num_perm, self.bands, self.rows)


class DedupeMinHash(DedupeStage):
    name = "dedupe_minhash"
    Config = MinHashConfig
    reads = ("dedupe_key",)
    dup_of_column = "minhash_dup_of"
    cluster_size_column = "minhash_cluster_size"
    drop_reason = "near_duplicate"
    keys_in_workers = True  # shingling and hashing hold the GIL: the step 14% faster in 2 processes (docs/benchmarks.md)

    def __init__(self, config: MinHashConfig | None = None):
        super().__init__(config)
        self._last: tuple[pa.Table, np.ndarray, np.ndarray] | None = None

    def sketch(self, table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """(signatures, has_signature) for a table; the engine asks for keys and payload of the same table, so the
        last result is reused instead of hashed twice."""
        if self._last is not None and self._last[0] is table:
            return self._last[1], self._last[2]
        cfg = self.config
        folded = minhash.fold(table.column("dedupe_key"))
        sigs, present = minhash.sketch(folded, cfg.ngram, cfg.num_perm, cfg.seed)
        self._last = (table, sigs, present)
        return sigs, present

    def keys(self, table: pa.Table) -> pa.Table:
        sigs, present = self.sketch(table)
        lsh = self.config.lsh
        return minhash.band_keys(sigs, lsh.bands, lsh.rows, present)

    def payload(self, table: pa.Table) -> np.ndarray | None:
        return minhash.payload(self.sketch(table)[0]) if self.config.verify else None

    def verify(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return minhash.estimated_jaccard(a, b) >= self.config.threshold

    def history(self, table: pa.Table) -> pa.Table:
        """State to persist for the rows of `table` once published (see minhash.history_state)."""
        sigs, present = self.sketch(table)
        cfg = self.config
        scheme = {"num_perm": cfg.num_perm, "seed": cfg.seed, "ngram": cfg.ngram}
        return minhash.history_state(table.column("id"), table.column("created_at"), sigs, present, **scheme)

    def history_keys(self, state: pa.Table) -> pa.Table:
        """Band keys of persisted rows (row = position in `state`), for this configuration's bands."""
        cfg = self.config
        return minhash.history_keys(state, cfg.lsh, num_perm=cfg.num_perm, seed=cfg.seed, ngram=cfg.ngram)

    def check_history(self, schema: pa.Schema) -> None:
        cfg = self.config
        minhash.check_history_scheme(schema, num_perm=cfg.num_perm, seed=cfg.seed, ngram=cfg.ngram)

    def history_payload(self, state: pa.Table) -> np.ndarray | None:
        """Signatures of persisted rows, to verify candidate pairs against them."""
        cfg = self.config
        if not cfg.verify:
            return None
        return minhash.payload(minhash.history_signatures(state, num_perm=cfg.num_perm, seed=cfg.seed, ngram=cfg.ngram))
