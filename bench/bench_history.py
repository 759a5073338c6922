"""A run's dedupe history (the MinHash state of the rows it publishes), side by side, in both directions.

Writing it: computed part by part in the driver process, as the pipeline did before 2026-12-07, and by the engine's
workers (Spark local[N], and the polars engine's N worker processes; N = cores), as `write_history` does now, each
worker writing the file of each part it computed. Reading it, as an append does before it dedupes: the published rows' band keys, ids and payloads made
in the driver from the whole history concatenated in its memory (before), and by one worker task per history file
(now; the driver holds none of it).

    .venv/bin/python bench/bench_history.py [--n 1000000] [--part-rows 262144] [--rounds 2] [--json out.json]

Input: bench/corpus.py's rows (TWEET_SCHEMA, eight languages), normalized, in parts of --part-rows. The Spark session
and its Python workers are started, and have set the stage up, before the clock runs (a warm-up on one part). The
ways alternate for --rounds rounds; prints wall seconds per run, what the driver held, and whether both ways gave the
same rows.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from corpus import normalized_parts, step_arguments  # noqa: E402
from transforms.engines import make_engine  # noqa: E402
from transforms.engines.part_tasks import flip_ids, pack_rows, part_bits, write_table  # noqa: E402
from transforms.engines.polars import PolarsEngine  # noqa: E402
from transforms.engines.staging import read_part  # noqa: E402
from transforms.stages.dedupe_minhash import DedupeMinHash  # noqa: E402


def write_in_driver(stage: DedupeMinHash, parts: list[Path], path: Path) -> None:
    """What the pipeline did before: every part's state computed in the driver process, into one file."""
    writer = None
    for part in parts:
        state = stage.history(read_part(part))
        writer = writer or pq.ParquetWriter(path, state.schema, compression="zstd")
        writer.write_table(state)
    writer.close()


def read_in_driver(stage: DedupeMinHash, files: list[Path], out: Path, bits: int) -> int:
    """What an append did before: the whole history in the driver's memory, its keys, ids and payloads made there
    (ranks with all-ones part bits, as then); the bytes it held."""
    history = pa.concat_tables([pq.read_table(f) for f in files])
    ranks = (np.arange(history.num_rows, dtype=np.int64) << bits) | ((1 << bits) - 1)
    keys = stage.history_keys(history)
    write_table(out / "keys" / "history.parquet", pa.table({
        "rank": pa.array(ranks[keys.column("row").to_numpy()]), "band": keys.column("band").cast(pa.int32()),
        "key": pa.array(keys.column("key").to_numpy().view(np.int64))}))
    write_table(out / "published" / "history.parquet", pa.table({"rank": ranks, "idk": flip_ids(history.column("id"))}))
    payload = np.ascontiguousarray(stage.history_payload(history))
    write_table(out / "payloads" / "history.parquet", pa.table({"rank": ranks, "payload": pack_rows(payload)}))
    return history.nbytes + keys.nbytes + payload.nbytes


def rows(path: Path) -> pa.Table:
    return pq.read_table(path) if path.is_file() else pa.concat_tables(pq.read_table(f) for f in sorted(path.iterdir()))


def main() -> None:
    args = step_arguments(__doc__)
    cores = os.cpu_count() or 1
    stage = DedupeMinHash()
    stage.ensure_setup()
    with tempfile.TemporaryDirectory() as work:
        parts = normalized_parts(Path(work) / "parts", args.n, args.part_rows)
        spark = make_engine("spark", part_rows=args.part_rows, master=f"local[{cores}]", shuffle_partitions=cores)
        spark.write_history(stage, parts[:1], Path(work) / "warm-up")
        polars = PolarsEngine(part_rows=args.part_rows)
        ways = {
            "driver, part by part (before)": lambda path: write_in_driver(stage, parts, path),
            f"engine workers, Spark local[{cores}] (now)": lambda path: spark.write_history(stage, parts, path),
            f"engine workers, polars engine, {cores} processes (now)": lambda path: polars.write_history(
                stage, parts, path),
        }
        results = {name: [] for name in ways}
        files = {}
        for r in range(args.rounds):
            for i, (name, write) in enumerate(ways.items()):
                path = Path(work) / f"history-{r}-{i}"
                started = time.perf_counter()
                write(path)
                results[name].append(round(time.perf_counter() - started, 2))
                files[name] = path
                print(f"round {r + 1}: {name}: {results[name][-1]} s", flush=True)
        first, *others = (rows(f) for f in files.values())
        summary = {"cores": cores, "rows": args.n, "parts": len(parts), "state_rows": first.num_rows,
                   "write_wall_s": results, "write_same_rows": all(first.equals(o) for o in others)}

        history = sorted(files[f"engine workers, Spark local[{cores}] (now)"].iterdir())  # one file per part
        sizes = [pq.read_metadata(f).num_rows for f in history]
        bits = part_bits(1 + len(history), sum(sizes), cores, "shuffle_partitions")
        ways = {
            "driver, whole history in memory (before)": lambda out: read_in_driver(stage, history, out, bits),
            f"a task per history file, Spark local[{cores}] (now)": lambda out: spark._sketch_history(
                stage, [str(parts[0])], history, sizes, out, bits) and 0,
        }
        results, held, keys = {name: [] for name in ways}, {}, {}
        for r in range(args.rounds):
            for i, (name, read) in enumerate(ways.items()):
                out = Path(work) / f"read-{r}-{i}"
                started = time.perf_counter()
                held[name] = read(out)
                results[name].append(round(time.perf_counter() - started, 2))
                keys[name] = pq.read_table(out / "keys").sort_by([("band", "ascending"), ("key", "ascending")])
                print(f"round {r + 1}: {name}: {results[name][-1]} s", flush=True)
        first, second = (pa.table({c: k.column(c) for c in ("band", "key")}) for k in keys.values())
        summary |= {"read_wall_s": results, "read_driver_bytes": held, "read_same_keys": first.equals(second)}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
