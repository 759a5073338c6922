"""dedupe_id: one tweet per id, whatever its text; against published rows too."""

import pyarrow.parquet as pq

from tests.helpers import tweets, write_parts
from transforms import pipeline, publish
from transforms.config import load_config
from transforms.engines.polars import PolarsEngine
from transforms.engines.staging import read_part
from transforms.stages.dedupe_id import DedupeId

ROWS = [
    {"id": "7", "text": "full text of the tweet, from the archive", "created_at": 200},
    {"id": "8", "text": "another tweet", "created_at": 100},
    {"id": "7", "text": "full text of the tw…", "created_at": 100},  # earlier than the first
    {"id": "7", "text": "@bob full text of the tweet, from the archive", "created_at": 100},  # as early, longer: kept
    {"id": "9", "text": "full text of the tw…", "created_at": 300},  # another id with a copied text: not this stage's
]


def test_records_with_one_id_are_one_tweet_across_parts(tmp_path):
    parts = write_parts(tweets(ROWS), tmp_path / "in", 2)
    result = PolarsEngine(part_rows=2).run_stage(DedupeId(), parts, tmp_path / "out", False)
    kept = [r for p in result.parts for r in read_part(p).to_pylist()]
    assert [(r["id"], r["text"], r["id_cluster_size"]) for r in kept] == [
        ("8", "another tweet", 1), ("7", "@bob full text of the tweet, from the archive", 3),
        ("9", "full text of the tw…", 1)]
    # Ties on (created_at, id) are broken by the rows themselves, never by their order in the input.
    backwards = write_parts(tweets(ROWS[::-1]), tmp_path / "in-backwards", 2)
    again = PolarsEngine(part_rows=2).run_stage(DedupeId(), backwards, tmp_path / "out-backwards", False)
    assert sorted(r["text"] for p in again.parts for r in read_part(p).to_pylist()) == [
        "@bob full text of the tweet, from the archive", "another tweet", "full text of the tw…"]
    drops = pq.read_table(result.drops).to_pylist()
    assert sorted((d["id"], d["stage"], d["reason"], d["dup_of"]) for d in drops) == [
        ("7", "dedupe_id", "duplicate", "7")] * 2
    assert (result.rows_in, result.rows_out, dict(result.drop_reasons)) == (5, 3, {"duplicate": 2})


def test_keys_are_the_ids_and_history_keeps_only_ids():
    table = tweets(ROWS)
    stage = DedupeId()
    assert stage.keys(table).column("key").to_pylist() == [7, 8, 7, 7, 9]
    state = stage.history(table)
    assert state.column_names == ["id"]
    assert stage.history_keys(state).equals(stage.keys(table))


def _jsonl(path, records):
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_the_default_pipeline_publishes_an_id_once_and_appends_drop_published_ids(tmp_path):
    """The case that failed the quality gate before this stage: one id, two texts (published twice)."""
    table = tmp_path / "t"
    first = _jsonl(tmp_path / "a.jsonl", [
        {"id": "100", "text": "the same tweet, collected in full", "created_at": "2024-01-01T00:00:00Z"},
        {"id": "100", "text": "the same tweet, collec…", "created_at": "2024-01-01T00:00:00Z"},
        {"id": "101", "text": "a different tweet", "created_at": "2024-01-01T00:00:00Z"}])
    report = pipeline.run([first], table, load_config())
    assert [s["name"] for s in report["stages"]] == ["normalize", "dedupe_id", "dedupe_exact"]
    assert report["output_records"] == 2 and report["stages"][1]["reasons"] == {"duplicate": 1}
    again = _jsonl(tmp_path / "b.jsonl", [
        {"id": "101", "text": "a different tweet, edited", "created_at": "2024-01-02T00:00:00Z"},
        {"id": "102", "text": "new", "created_at": "2024-01-02T00:00:00Z"}])
    second = pipeline.run([again], table, load_config())
    assert second["output_records"] == 1
    drops = publish.read_log(table, "drops", second["run_id"]).to_pylist()
    assert [(d["id"], d["stage"], d["dup_of"]) for d in drops] == [("101", "dedupe_id", "101")]
