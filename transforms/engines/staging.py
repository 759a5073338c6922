"""Working parts: what one step hands to the next, as Arrow IPC files of bounded size.

Every step keeps its output (a crashed run resumes from it), so each part is written once and read once or twice.
Parquet spends most of that time encoding and decoding; an IPC file is Arrow's own memory layout, written at disk
speed and read back memory-mapped, without a copy. The price is disk: uncompressed parts take about the Arrow size
of the rows (~370 MB per step for 1M tweets); `compression="zstd"` (the polars engine's `staging_compression`
option) cuts that 2.5x for a little CPU. Published shards are Parquet (see write_shards); parts never leave the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Literal, Sequence

import pyarrow as pa
import pyarrow.ipc as ipc

PART_SUFFIX = ".arrow"
Compression = Literal["lz4", "zstd"] | None


def write_part(table: pa.Table, path: Path, compression: Compression = None) -> None:
    options = ipc.IpcWriteOptions(compression=compression)
    with ipc.new_file(str(path), table.schema, options=options) as writer:
        writer.write_table(table)


def read_part(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """The part's rows, memory-mapped (uncompressed parts cost no copy until a column is used)."""
    with pa.memory_map(str(path)) as source:
        table = ipc.open_file(source).read_all()
    return table.select(list(columns)) if columns is not None else table


def read_parts(parts: Sequence[Path]) -> Iterator[pa.Table]:
    for part in parts:
        yield read_part(part)


class PartWriter:
    """Writes tables into numbered parts of about `part_rows` rows."""

    def __init__(self, out_dir: Path, part_rows: int, compression: Compression = None):
        self.out_dir, self.part_rows, self.compression = out_dir, part_rows, compression
        out_dir.mkdir(parents=True, exist_ok=True)
        self.parts: list[Path] = []
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            if not self.parts and not self._pending:
                self._pending.append(table)  # keep the schema even if everything is empty
            return
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self.rows += table.num_rows
        while self._pending_rows >= self.part_rows:
            self._flush(self.part_rows)

    def _flush(self, rows: int | None = None) -> None:
        combined = pa.concat_tables(self._pending, promote_options="default")
        head = combined if rows is None else combined.slice(0, rows)
        path = self.out_dir / f"part-{len(self.parts):05d}{PART_SUFFIX}"
        write_part(head, path, self.compression)
        self.parts.append(path)
        rest = combined.slice(head.num_rows)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def close(self) -> list[Path]:
        if self._pending and (self._pending_rows or not self.parts):
            self._flush()
        return self.parts
