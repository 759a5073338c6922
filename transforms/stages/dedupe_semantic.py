"""dedupe_semantic: drop tweets that say what an earlier tweet said, in other words (embedding near-duplicates:
SemDeDup's cosine rule, found with LSH rather than k-means). The embedding model and the LSH live in
transforms/semantic.py; this module is the stage contract.

Each row's text, keyed and folded as MinHash folds it (no mentions, links, punctuation or emoji), is embedded with
all-MiniLM-L6-v2 (after the pii stage, the scrubbed text: the history beside the table then holds nothing the table
does not); rows that share a band of random-hyperplane signature bits are candidates, and a candidate pair is
joined only when the cosine of the two embeddings reaches the threshold. The representative of a group is the
preferred row, as in every dedupe stage. Rows that fold to nothing are never grouped here (exact dedupe owns them):
the encoder would map every emoji-only tweet to the same unknown word.

The encoder knows English: distinct Arabic tweets look alike to it (on the dev split of bench/semantic_eval.py,
9% of them would go at cosine 0.9, none at 0.95). So rows that language ID marked as another language are not
grouped unless listed in `languages`; run langid first on mixed-language corpora, or raise the threshold to 0.95.
The default threshold, 0.9 (SemDeDup's eps = 0.1), was chosen on that dev split: precision ~0.99+ on English
tweets, and every lower one drops distinct tweets of the same event. Runs on a GPU when torch sees one; on a CPU it
embeds ~150-300 tweets/s on 2 cores, so put it last, after the cheap filters.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from transforms import semantic
from transforms.encoder import DEVICE_PATTERN, assigned_device, check_device, model_files
from transforms.stages.base import DedupeStage, Resources, StageConfig, in_languages


class SemanticConfig(StageConfig):
    threshold: float = Field(0.9, gt=0.0, lt=1.0)  # cosine of two tweets' embeddings that makes a duplicate
    # Rows whose `lang` (when language ID ran before) is set and not in this list are not grouped: the encoder knows
    # English only. None groups every row.
    languages: tuple[str, ...] | None = ("en",)
    # LSH bands x rows signature bits per row: with the all-pairs check of small buckets (transforms/dedupe.py),
    # 96 x 20 found 99.5% of the rows that checking every pair drops on 110k real tweets (bench/semantic_eval.py).
    bands: int = Field(96, ge=1, le=512)
    rows: int = Field(20, ge=1, le=64)
    seed: int = Field(1, ge=0, lt=2**32)
    device: str = Field("auto", pattern=DEVICE_PATTERN)  # auto: the GPU where torch sees one
    batch_size: int = Field(64, ge=1, le=4096)  # rows per forward pass (every pass has this many)
    max_length: int = Field(128, ge=16, le=512)  # word pieces kept per tweet

    @property
    def lsh(self) -> semantic.LshParams:
        return semantic.LshParams(self.bands, self.rows)


class DedupeSemantic(DedupeStage):
    name = "dedupe_semantic"
    Config = SemanticConfig
    reads = ("text",)  # and `lang`, when language ID ran before
    writes = (pa.field("semantic_vector", pa.binary(semantic.DIM)),)
    internal = ("semantic_vector",)  # working data for the grouping and the history: never published
    dup_of_column = "semantic_dup_of"
    cluster_size_column = "semantic_cluster_size"
    drop_reason = "semantic_duplicate"

    @property
    def resources(self) -> Resources:
        return Resources(model_files=tuple(map(str, model_files())), gpu=self.config.device != "cpu")

    def on_gpu(self, address: str) -> DedupeSemantic:
        if not self.resources.gpu:
            return self
        return DedupeSemantic(self.config.model_copy(update={"device": assigned_device(address)}))

    def setup(self) -> None:
        cfg = self.config
        check_device(cfg.device, "settings.dedupe_semantic.device")
        self._encoder = semantic.Encoder(cfg.device, cfg.batch_size, cfg.max_length)

    def annotate(self, table: pa.Table) -> pa.Table:
        """The embedding of every row that takes part (null for the others), computed once: keys, payload and
        history read it from this column."""
        self.ensure_setup()
        folded = semantic.folded_text(table.column("text"))
        present = pc.greater(pc.binary_length(folded), 0).to_numpy(zero_copy_only=False)
        if self.config.languages is not None:
            present &= in_languages(table, self.config.languages)
        vectors = np.zeros((table.num_rows, semantic.DIM), dtype=np.int8)
        rows = np.flatnonzero(present)
        vectors[rows] = self._encoder.embed(folded.take(pa.array(rows)).to_pylist())
        return pa.table({"semantic_vector": semantic.vector_column(vectors, present)})

    def keys(self, table: pa.Table) -> pa.Table:
        vectors, present = semantic.vectors_of(table.column("semantic_vector"))
        return semantic.lsh_keys(vectors, present, self.config.lsh, self.config.seed)

    def payload(self, table: pa.Table) -> np.ndarray:
        return semantic.vectors_of(table.column("semantic_vector"))[0]

    def verify(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return semantic.cosine(a, b) >= self.config.threshold

    def history(self, table: pa.Table) -> pa.Table:
        vectors, present = semantic.vectors_of(table.column("semantic_vector"))
        return semantic.history_state(table.column("id"), table.column("created_at"), vectors, present,
                                      max_length=self.config.max_length)

    def history_keys(self, state: pa.Table) -> pa.Table:
        vectors = semantic.history_vectors(state, max_length=self.config.max_length)
        return semantic.lsh_keys(vectors, np.ones(len(vectors), dtype=bool), self.config.lsh, self.config.seed)

    def check_history(self, schema: pa.Schema) -> None:
        semantic.check_history_encoding(schema, max_length=self.config.max_length)

    def history_payload(self, state: pa.Table) -> np.ndarray:
        return semantic.history_vectors(state, max_length=self.config.max_length)
