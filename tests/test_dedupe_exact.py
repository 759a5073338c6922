import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tests.helpers import tweets, write_parts
from transforms.engines.polars import PolarsEngine
from transforms.engines.staging import read_part
from transforms.stages.dedupe_exact import DedupeExact
from transforms.stages.normalize import Normalize


def _dedupe(tmp_path, rows, rows_per_part=2, annotate=False, config=None):
    parts = write_parts(tweets(rows), tmp_path / "in", rows_per_part)
    engine = PolarsEngine(part_rows=rows_per_part)
    norm = engine.run_stage(Normalize(), parts, tmp_path / "norm", annotate)
    result = engine.run_stage(DedupeExact(config), norm.parts, tmp_path / "exact", annotate)
    out = [read_part(p) for p in result.parts]
    kept = [r for t in out for r in t.to_pylist()]
    drops = pq.read_table(result.drops).to_pylist()
    return result, kept, drops


ROWS = [
    {"id": "10", "text": "Same words here https://t.co/a", "created_at": 300},
    {"id": "11", "text": "same   words HERE http://x.y/z", "created_at": 100},  # earliest: the representative
    {"id": "12", "text": "Different", "created_at": 50},
    {"id": "9", "text": "SAME words here https://t.co/other", "created_at": 100},  # tie on time: smaller id wins
    {"id": "13", "text": "RT @bob: Different", "created_at": 60, "retweet_of_id": "12"},
    {"id": "14", "text": "RT @carol: something not in the data", "created_at": 70},
]


def test_keeps_earliest_then_smallest_id_across_parts(tmp_path):
    result, kept, drops = _dedupe(tmp_path, ROWS)
    assert sorted(r["id"] for r in kept) == ["12", "9"]
    by_id = {d["id"]: d for d in drops}
    assert by_id["10"]["dup_of"] == "9" and by_id["11"]["dup_of"] == "9"
    assert by_id["10"]["reason"] == "duplicate" and by_id["10"]["stage"] == "dedupe_exact"
    assert by_id["13"]["reason"] == "retweet" and by_id["13"]["dup_of"] == "12"
    assert by_id["14"]["reason"] == "retweet" and by_id["14"]["dup_of"] is None
    assert result.rows_in == 6 and result.rows_out == 2 and sum(result.drop_reasons.values()) == 4
    assert {r["exact_cluster_size"] for r in kept if r["id"] == "9"} == {3}


def test_order_of_input_does_not_change_the_result(tmp_path):
    _, kept_a, drops_a = _dedupe(tmp_path / "a", ROWS, rows_per_part=4)
    _, kept_b, drops_b = _dedupe(tmp_path / "b", list(reversed(ROWS)), rows_per_part=1)
    assert sorted(r["id"] for r in kept_a) == sorted(r["id"] for r in kept_b)
    assert sorted((d["id"], d["dup_of"]) for d in drops_a) == sorted((d["id"], d["dup_of"], ) for d in drops_b)


def test_retweets_can_be_kept_and_still_match_their_original(tmp_path):
    config = DedupeExact.Config(drop_retweets=False)
    _, kept, drops = _dedupe(tmp_path, ROWS, config=config)
    assert {d["id"]: d["dup_of"] for d in drops}["13"] == "12"  # "RT @bob: Different" has the key of "Different"
    assert "14" in {r["id"] for r in kept}


def test_annotate_mode_drops_nothing_and_names_the_stage(tmp_path):
    _, rows, drops = _dedupe(tmp_path, ROWS, annotate=True)
    assert len(rows) == len(ROWS) and drops == []
    reasons = {r["id"]: r["drop_reason"] for r in rows}
    assert reasons["10"] == "dedupe_exact:duplicate" and reasons["13"] == "dedupe_exact:retweet"
    assert reasons["9"] is None and reasons["12"] is None
    assert {r["id"]: r["exact_dup_of"] for r in rows}["11"] == "9"


def test_missing_created_at_loses_to_dated_rows(tmp_path):
    rows = [{"id": "1", "text": "x y"}, {"id": "2", "text": "X Y", "created_at": 5}]
    _, kept, _ = _dedupe(tmp_path, rows)
    assert [r["id"] for r in kept] == ["2"]


def test_bucketed_grouping_equals_the_general_grouping(tmp_path):
    """The polars engine groups exact keys bucket by bucket on disk (bounded memory); with many small buckets, ties
    on time and id, missing times, retweets and published history it keeps and drops exactly what the general
    in-memory grouping (transforms/dedupe.py) does."""
    rng = np.random.default_rng(7)
    n = 3000
    texts = [f"text {k}" for k in rng.integers(0, 700, n)]
    rows = [{"id": str(int(rng.integers(1, 2000))), "text": t,
             **({"created_at": int(rng.integers(0, 50))} if rng.random() < 0.9 else {})} for t in texts]
    for r in rows[::37]:
        r["text"] = "RT @x: " + r["text"]
    published = tweets([{"id": str(5000 + k), "text": f"text {k}"} for k in range(0, 700, 9)])
    stage, engine = DedupeExact(), PolarsEngine(part_rows=128)  # ~30 buckets
    stage.ensure_setup()
    norm = engine.run_stage(Normalize(), write_parts(tweets(rows), tmp_path / "in", 500), tmp_path / "norm", False)
    state = stage.history(Normalize().annotate(published).append_column("id", published.column("id")))
    history = [tmp_path / "history-0.parquet", tmp_path / "history-1.parquet"]  # read one file at a time
    pq.write_table(state.slice(0, 40), history[0])
    pq.write_table(state.slice(40), history[1])
    out = {}
    for name, run in (("buckets", engine._run_key_groups), ("general", engine._run_dedupe)):
        for annotate in (False, True):
            result = run(stage, norm.parts, tmp_path / f"{name}-{annotate}", annotate, history)
            table = pa.concat_tables(read_part(p) for p in result.parts)
            out[name, annotate] = (table, pq.read_table(result.drops), result.drop_reasons)
    for annotate in (False, True):
        assert out["buckets", annotate][0].equals(out["general", annotate][0])
        assert out["buckets", annotate][1].equals(out["general", annotate][1])
        assert out["buckets", annotate][2] == out["general", annotate][2]
    assert out["buckets", False][2]["duplicate"] > 1000 and out["buckets", False][2]["retweet"] > 50
    dup_of = set(pc.drop_null(out["buckets", True][0].column("exact_dup_of")).to_pylist())
    assert dup_of & set(published.column("id").to_pylist())  # published rows win over new ones
