"""Input files read in pieces (Spark and Beam: one task per piece) give what the whole-file read gives."""

from __future__ import annotations

import gzip

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from transforms.readers import ReaderOptions, expand_inputs, read_inputs
from transforms.readers.pieces import count_piece, plan_pieces, read_piece, settle
from transforms.schema import REJECT_SCHEMA, TWEET_SCHEMA


def whole(paths, **options) -> tuple[pa.Table, pa.Table]:
    batches = list(read_inputs([str(p) for p in paths], ReaderOptions(**options)))
    return (pa.concat_tables([TWEET_SCHEMA.empty_table()] + [b.tweets for b in batches]),
            pa.concat_tables([REJECT_SCHEMA.empty_table()] + [b.rejects for b in batches]))


def in_pieces(paths, **options) -> tuple[pa.Table, pa.Table, list]:
    """Plan, count and read as the task engines do, piece by piece in order."""
    opts = ReaderOptions(**options)
    pieces = plan_pieces(expand_inputs([str(p) for p in paths]), opts)
    pieces = settle(pieces, [count_piece(p, opts) if p.mode == "lines" else None for p in pieces])
    parts = [part for p in pieces for part in read_piece(p, opts)]
    return (pa.concat_tables([TWEET_SCHEMA.empty_table()] + [p.tweets for p in parts]),
            pa.concat_tables([REJECT_SCHEMA.empty_table()] + [p.rejects for p in parts]), pieces)


def v2(i: int, text: str = "") -> bytes:
    return orjson.dumps({"id": str(10_000 + i), "text": text or f"tweet {i}", "author_id": str(i % 7),
                         "created_at": "2024-01-01T00:00:00.000Z"})


def v1(i: int) -> bytes:
    return orjson.dumps({"id_str": str(20_000 + i), "full_text": f"a v1.1 tweet {i}", "user": {"id_str": "9"},
                         "created_at": "Wed Oct 11 20:19:21 +0000 2018"})


def page(i: int) -> bytes:
    return orjson.dumps({"data": [orjson.loads(v2(i)), orjson.loads(v2(i + 1))], "meta": {"result_count": 2}})


def mixed_lines() -> bytes:
    """What cutting can get wrong: a BOM, lines before the one that sets the kind (a malformed one, a non-tweet
    object), blank and CRLF lines, a line longer than a piece, pages, bad bytes, tweets of another kind, and a last
    line without its newline."""
    body = [b"\xef\xbb\xbf{\"broken", b'{"statuses_count": 5}', b"", v2(0), b"   ", v2(1) + b"\r",
            page(2), b'{"id": "3", "text": "bad \xff byte"}', v2(4, "long " * 300), *[v2(i) for i in range(5, 40)],
            b'{"text": "no id"}', *[v1(i) for i in range(8)], b"[1, 2]", *[v2(i) for i in range(40, 60)],
            page(60), b"\r", v2(62)]
    return b"\n".join(body)


@pytest.mark.parametrize("piece_bytes", [64, 300, 1_000, 4_000])
@pytest.mark.parametrize("batch_bytes", [100, 32 << 20])
def test_json_lines_in_byte_ranges_read_as_the_whole_file(tmp_path, piece_bytes, batch_bytes):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(mixed_lines())
    want = whole([path], batch_bytes=batch_bytes)
    got_tweets, got_rejects, pieces = in_pieces([path], batch_bytes=batch_bytes, piece_bytes=piece_bytes)
    assert len(pieces) > 1 and {p.mode for p in pieces} == {"lines"}
    assert want[0].num_rows == 71 and want[1].num_rows == 5
    assert got_tweets.equals(want[0]) and got_rejects.equals(want[1])


def test_the_kind_set_in_a_later_piece_holds_only_from_its_line(tmp_path):
    """The file's first tweet, which sets its kind, comes after ~2 KB of lines that set none, so several ranges lie
    before it; each range is read with that kind from that line on, as the whole file is. The kind matters here:
    flat records with a v1.1 field name (favorite_count) are flat in a flat file, v1.1 read on their own."""
    flat = [orjson.dumps({"tweet_id": str(i), "text": f"flat {i}", "user_id": "5"} | ({"favorite_count": i} if i % 2
                                                                                      else {})) for i in range(30)]
    body = [b'{"note": "not a tweet"}'] * 80 + flat + [v1(0)]
    path = tmp_path / "late.jsonl"
    path.write_bytes(b"\n".join(body) + b"\n")
    want = whole([path])
    got_tweets, got_rejects, pieces = in_pieces([path], piece_bytes=200)
    assert len(pieces) > 8 and {p.spec_line for p in pieces} == {81}
    assert pieces[0].first_line == 1 and pieces[-1].first_line > 81
    assert got_tweets.equals(want[0]) and got_rejects.equals(want[1])
    assert want[0].num_rows == 31 and want[1].num_rows == 80
    assert want[0].column("source_format").to_pylist() == ["jsonl"] * 30 + ["v1.1"]


def test_a_file_where_no_line_sets_the_kind(tmp_path):
    path = tmp_path / "nothing.jsonl"
    path.write_bytes(b"\n".join([b'{"note": 1}', b"not json", b'{"text": "no id"}', b"[]"] * 20) + b"\n")
    want = whole([path])
    got_tweets, got_rejects, pieces = in_pieces([path], piece_bytes=128)
    assert len(pieces) > 4 and all(p.spec_at == -1 for p in pieces)
    assert got_tweets.equals(want[0]) and got_rejects.equals(want[1])


def test_compressed_and_small_files_are_one_piece_each(tmp_path):
    lines = b"\n".join(v2(i) for i in range(200)) + b"\n"
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(lines))
    (tmp_path / "b.jsonl").write_bytes(lines)
    (tmp_path / "c.csv").write_bytes(b"id,text\n" + b"".join(b"%d,t %d\n" % (i, i) for i in range(200)))
    pieces = plan_pieces(expand_inputs([str(tmp_path)]), ReaderOptions(piece_bytes=1_000))
    assert [(p.path.rsplit("/", 1)[1], p.mode) for p in pieces if p.mode == "whole"] == [("a.jsonl.gz", "whole"),
                                                                                         ("c.csv", "whole")]
    assert sum(p.mode == "lines" for p in pieces) > 5
    assert not [p for p in plan_pieces([str(tmp_path / "b.jsonl")], ReaderOptions()) if p.mode != "whole"]


def _parquet(path, groups: int, rows: int) -> None:
    table = pa.table({"id": [str(100 + i) for i in range(groups * rows)],
                      "text": [f"parquet tweet {i}" for i in range(groups * rows)]})
    pq.write_table(table, path, row_group_size=rows, compression="none")


def test_parquet_in_runs_of_row_groups_reads_as_the_whole_file(tmp_path):
    path = tmp_path / "t.parquet"
    _parquet(path, 7, 40)
    want = whole([path], batch_bytes=500)
    got_tweets, got_rejects, pieces = in_pieces([path], batch_bytes=500, piece_bytes=1)
    assert [(p.start, p.end, p.first_line) for p in pieces] == [(g, g + 1, 1 + 40 * g) for g in range(7)]
    assert got_tweets.equals(want[0]) and got_rejects.equals(want[1])
    assert want[0].column("source_line").to_pylist() == list(range(1, 281))


def test_a_damaged_row_group_costs_only_its_own_rows(tmp_path):
    """One reject at each damaged group's first line for its rows; the groups between and after them are read,
    whether the file is read whole (in batches that span groups) or in pieces."""
    path = tmp_path / "damaged.parquet"
    _parquet(path, 5, 50)
    data = bytearray(path.read_bytes())
    for g in (2, 4):
        column = pq.ParquetFile(path).metadata.row_group(g).column(0)
        data[column.data_page_offset : column.data_page_offset + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))
    meta = pq.ParquetFile(path).metadata
    batch_30 = sum(meta.row_group(g).total_byte_size for g in range(5)) * 30 // 250 + 1  # batches of 30 rows: one
    # holds the end of group 1 and the start of group 2, so group 1 is read again alone, less its first 40 rows
    reads = (whole([path]), whole([path], batch_bytes=batch_30), in_pieces([path], piece_bytes=1)[:2])
    for tweets, rejects in reads:
        assert tweets.column("source_line").to_pylist() == [*range(1, 101), *range(151, 201)]
        assert rejects.column("source_line").to_pylist() == [101, 201]
        reasons = rejects.column("reason").to_pylist()
        assert [r.split(":")[0] for r in reasons] == [f"unreadable Parquet data in row group {g}" for g in (2, 4)]
        assert all(r.endswith("its 50 unread rows are lost") for r in reasons)
