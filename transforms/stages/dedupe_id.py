"""dedupe_id: records that carry the same tweet id are one tweet, whatever their text.

The same tweet often arrives more than once with texts that still differ after normalization: from the API and
from an account archive, cut short by a CSV export, with or without its leading @-mentions. dedupe_exact keeps such
copies apart (their texts differ), and the published table would hold an id twice, which the quality gate refuses.
Tweet ids are 64-bit numbers (the readers reject any other), so the key is the id itself: no hash, no collision.
The engine keeps the earliest record (created_at, then input order); on an append, a record whose id is already
published is a copy of the published row.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from transforms.stages.base import DedupeStage, one_key_per_row


def _id_keys(ids: pa.ChunkedArray | pa.Array) -> pa.Table:
    return one_key_per_row(np.asarray(ids.cast(pa.uint64()).to_numpy(zero_copy_only=False), dtype=np.uint64))


class DedupeId(DedupeStage):
    name = "dedupe_id"
    reads = ("id",)
    dup_of_column = "id_dup_of"
    cluster_size_column = "id_cluster_size"
    one_key_per_row = True
    thread_safe = True  # Arrow casts on the table alone

    def keys(self, table: pa.Table) -> pa.Table:
        return _id_keys(table.column("id"))

    def history(self, table: pa.Table) -> pa.Table:
        return pa.table({"id": table.column("id")})

    def history_keys(self, state: pa.Table) -> pa.Table:
        return _id_keys(state.column("id"))
