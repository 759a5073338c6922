"""Working parts between steps: Arrow IPC, optionally compressed, written in bounded parts, read back unchanged."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import tweets
from transforms.engines import make_engine
from transforms.engines.staging import PartWriter, read_part, read_parts
from transforms.stages.normalize import Normalize


@pytest.mark.parametrize("compression", [None, "lz4", "zstd"])
def test_parts_round_trip_in_bounded_parts(tmp_path, compression):
    table = tweets([{"id": str(i), "text": f"tweet {i} \u00e9"} for i in range(25)])
    writer = PartWriter(tmp_path, part_rows=10, compression=compression)
    for start in range(0, 25, 7):
        writer.add(table.slice(start, 7))
    parts = writer.close()
    assert [read_part(p).num_rows for p in parts] == [10, 10, 5]
    assert pa.concat_tables(read_parts(parts)).equals(table)
    assert read_part(parts[0], columns=["id"]).column_names == ["id"]


def test_empty_input_keeps_the_schema(tmp_path):
    writer = PartWriter(tmp_path, part_rows=10)
    writer.add(tweets([]))
    (part,) = writer.close()
    assert read_part(part).num_rows == 0 and read_part(part).schema == tweets([]).schema


def test_engine_option_compresses_parts_with_the_same_rows(tmp_path):
    rows = [{"id": str(i), "text": "same words again " * 20} for i in range(200)]
    writer = PartWriter(tmp_path / "in", 100)
    writer.add(tweets(rows))
    parts = writer.close()
    out = {}
    for compression in (None, "zstd"):
        engine = make_engine("polars", part_rows=100, staging_compression=compression)
        result = engine.run_stage(Normalize(), parts, tmp_path / str(compression), False)
        out[compression] = (pa.concat_tables(read_parts(result.parts)), sum(p.stat().st_size for p in result.parts))
    assert out[None][0].equals(out["zstd"][0])
    assert out["zstd"][1] < out[None][1] / 3


def test_unknown_engine_option_is_named():
    with pytest.raises(ValueError, match="spill\n  Extra inputs are not permitted"):
        make_engine("polars", part_rows=10, spill=True)


def test_threads_change_nothing_but_speed(tmp_path):
    """Thread-safe stages overlap parts; the rows, their order and the drop logs are those of one thread."""
    from tests.helpers import write_parts
    from transforms.stages.dedupe_exact import DedupeExact

    rows = [{"id": str(i), "text": f"tweet {i % 150} \u00a0 again", "created_at": i % 7} for i in range(1000)]
    parts = write_parts(tweets(rows), tmp_path / "in", 64)
    out = {}
    for threads in (1, 2, 4):
        engine = make_engine("polars", part_rows=64, threads=threads)
        norm = engine.run_stage(Normalize(), parts, tmp_path / f"n{threads}", False)
        exact = engine.run_stage(DedupeExact(), norm.parts, tmp_path / f"e{threads}", False)
        out[threads] = (pa.concat_tables(read_parts(exact.parts)), pq.read_table(exact.drops))
    assert out[1][0].num_rows == 150 and out[1][1].num_rows == 850
    for threads in (2, 4):
        assert out[threads][0].equals(out[1][0]) and out[threads][1].equals(out[1][1])


def test_ordered_map_keeps_order_and_bounds_work_in_flight():
    import threading
    import time

    from transforms.engines.polars import ordered_map

    started, lock, most = [], threading.Lock(), [0]

    def work(i):
        with lock:
            started.append(i)
        time.sleep(0.002 * (i % 3))
        return i * i

    consumed = []
    for i, value in enumerate(ordered_map(work, range(40), 3)):
        assert value == i * i
        consumed.append(i)
        most[0] = max(most[0], len(started) - len(consumed))
    assert consumed == list(range(40)) and most[0] <= 2
