"""Small builders shared by tests: canonical tweet tables and working parts."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from transforms.engines.staging import write_part
from transforms.schema import TWEET_SCHEMA


def tweets(rows: list[dict]) -> pa.Table:
    """rows: dicts with canonical fields; created_at may be an int (seconds since epoch)."""
    fixed = []
    for i, r in enumerate(rows):
        r = dict(r)
        if isinstance(r.get("created_at"), int):
            r["created_at"] = datetime.fromtimestamp(r["created_at"], tz=timezone.utc)
        r.setdefault("source_file", "test")
        r.setdefault("source_line", i + 1)
        r.setdefault("source_index", 0)
        fixed.append(r)
    return pa.Table.from_pylist(fixed, schema=TWEET_SCHEMA)


def write_parts(table: pa.Table, folder: Path, rows_per_part: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for i, start in enumerate(range(0, max(table.num_rows, 1), rows_per_part)):
        path = folder / f"part-{i:05d}.arrow"
        write_part(table.slice(start, rows_per_part), path)
        parts.append(path)
    return parts
