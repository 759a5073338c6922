"""The stage contract every engine runs (after NeMo Curator's stage contract, without its magic).

A stage is defined once, engine-neutral. It declares the columns it reads and writes and the resources it needs,
loads what it needs once per worker in `setup`, and works on whole Arrow tables, never on one tweet at a time.

Two kinds:
- BatchStage: `annotate(table)` returns new/replaced columns, `drop_reasons(table)` says which rows its keep rule drops.
- DedupeStage: `keys(table)` emits grouping keys per row; an engine groups rows that share a key (connected
  components), keeps the representative of each group (earliest created_at, then smallest id) and drops the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True)
class Resources:
    """What a stage needs on a worker. `gpu`: its annotate runs a model that wants one GPU (an engine that schedules
    GPUs gives each such task one and hands its address to `Stage.on_gpu`)."""

    model_files: tuple[str, ...] = ()
    gpu: bool = False


class SetupError(RuntimeError):
    """A stage cannot run in this environment (a key it needs is missing, say): the message says what to set, in one
    line, and never echoes a secret. Raised by `preflight` before any work starts; the CLI exits 2 on it."""


class StageConfig(BaseModel):
    """Base for each stage's typed settings (each stage module defines its own subclass)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Stage:
    name: ClassVar[str]
    Config: ClassVar[type[StageConfig]] = StageConfig
    reads: ClassVar[tuple[str, ...]] = ()
    writes: ClassVar[tuple[pa.Field, ...]] = ()
    # Columns in `writes` that are working data and never published (they may hold personal data).
    internal: ClassVar[tuple[str, ...]] = ()
    # True when the stage's methods may run on several tables at once in threads of one process (pure, no shared
    # mutable state, and the work releases the GIL): the polars engine then overlaps parts.
    thread_safe: ClassVar[bool] = False

    def __init__(self, config: StageConfig | None = None):
        self.config = config if config is not None else self.Config()
        self._ready = False

    @property
    def resources(self) -> Resources:
        return Resources()

    def on_gpu(self, address: str) -> Stage:
        """This stage with its GPU work on the GPU a cluster's scheduler gave the task (`address`: its index as torch
        numbers the worker's GPUs). Stages whose resources name no GPU are returned as they are."""
        return self

    def preflight(self) -> None:
        """Check, where the run starts and before any work, what `setup` will need from the environment besides
        model files (the config checks those); raise SetupError if it is missing. Loads no model."""

    def setup(self) -> None:
        """Load models and other per-worker state, once per worker: a stage's methods that need it call
        `ensure_setup` first (engines may also call it up front, where a run starts)."""

    def ensure_setup(self) -> None:
        if not self._ready:
            self.setup()
            self._ready = True

    def __getstate__(self):
        # Ship the configuration to workers, never loaded models: each worker runs setup() itself.
        return {"config": self.config}

    def __setstate__(self, state):
        self.__init__(state["config"])


class BatchStage(Stage):
    def annotate(self, table: pa.Table) -> pa.Table:
        """Columns to add (or replace, for names already in `table`), one row per input row. Pure and deterministic."""
        raise NotImplementedError

    def drop_reasons(self, table: pa.Table) -> pa.Array:
        """Per row: null to keep, else a short reason. `table` already holds this stage's columns."""
        return pa.nulls(table.num_rows, pa.string())


class DedupeStage(Stage):
    """Duplicates are rows connected through shared keys; see transforms/dedupe.py for the grouping."""

    dup_of_column: ClassVar[str]
    cluster_size_column: ClassVar[str]
    drop_reason: ClassVar[str] = "duplicate"
    # True when every row has exactly one key (band 0) and pairs need no verification: groups are then key groups,
    # which an engine may find bucket by bucket in bounded memory (transforms/engines/key_groups.py).
    one_key_per_row: ClassVar[bool] = False
    # True when the keys and payload of a part (and its history state) are CPU work that holds the GIL much of the
    # time (MinHash's hashing): the polars engine then computes them in one worker process per core. A stage whose
    # model already spreads over the cores (an encoder's torch threads) leaves it False.
    keys_in_workers: ClassVar[bool] = False

    def annotate(self, table: pa.Table) -> pa.Table:
        """Per-row columns this stage publishes besides dup_of (may be empty)."""
        return pa.table({})

    def keys(self, table: pa.Table) -> pa.Table:
        """Long table (row: int64 index into `table`, band: int32, key: uint64); rows sharing (band, key) are candidates."""
        raise NotImplementedError

    def pinned(self, table: pa.Table) -> tuple[pa.Array, pa.Array] | None:
        """Rows whose duplicate target is known up front (e.g. a retweet's original): (dup_of ids, reasons), null = not pinned."""
        return None

    def payload(self, table: pa.Table) -> np.ndarray | None:
        """Per-row data needed to verify candidate pairs (e.g. MinHash signatures), or None when pairs need no check."""
        return None

    def verify(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """For candidate pairs (payload rows a[i], b[i]) return a boolean mask of the pairs that really are duplicates."""
        return np.ones(len(a), dtype=bool)

    # Incremental dedupe: state kept for published rows, so a later append is deduped against them without
    # rehashing history. A stage without it returns None from history() and only dedupes within a run.
    def history(self, table: pa.Table) -> pa.Table | None:
        """State to persist for these (published) rows: at least `id`; never raw text."""
        return None

    def history_keys(self, state: pa.Table) -> pa.Table:
        """keys() for persisted rows (row = position in `state`)."""
        raise NotImplementedError

    def history_payload(self, state: pa.Table) -> np.ndarray | None:
        return None

    def check_history(self, schema: pa.Schema) -> None:
        """ValueError when persisted state with this schema was made otherwise than this stage makes it (checked
        before a run starts, from the files' footers)."""


def one_key_per_row(keys: np.ndarray) -> pa.Table:
    """keys() of a stage whose rows each have one key (band 0): row i's key is keys[i]."""
    n = len(keys)
    return pa.table({"row": np.arange(n, dtype=np.int64), "band": np.zeros(n, dtype=np.int32), "key": keys})


def in_languages(table: pa.Table, languages: tuple[str, ...]) -> np.ndarray:
    """Per row: its `lang` is one of `languages`, or unknown (no language ID ran, or it left the row null). The
    rule by which a stage whose model knows some languages only leaves the other rows alone."""
    if "lang" not in table.column_names:
        return np.ones(table.num_rows, dtype=bool)
    lang = table.column("lang")
    listed = pc.or_kleene(pc.is_null(lang), pc.is_in(lang, pa.array(languages, pa.string())))
    return np.asarray(listed.to_numpy(zero_copy_only=False), dtype=bool)


def reasons_where(mask, reason: str, num_rows: int) -> pa.Array:
    """A drop-reason column: `reason` where mask is true, null elsewhere (mask None, or null entries, keep the row).

    mask: a boolean numpy array, Arrow array or chunked array.
    """
    if mask is None:
        return pa.nulls(num_rows, pa.string())
    mask = pc.fill_null(pa.array(mask) if isinstance(mask, np.ndarray) else mask, False)
    out = pc.if_else(mask, pa.scalar(reason), pa.scalar(None, pa.string()))
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out
