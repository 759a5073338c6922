"""Working parts between steps: Arrow IPC, optionally compressed, written in bounded parts, read back unchanged."""

import pyarrow as pa
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
    with pytest.raises(ValueError, match="unknown polars engine options.*'spill'"):
        make_engine("polars", part_rows=10, spill=True)
