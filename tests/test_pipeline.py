"""End to end on the polars engine: every record accounted for, versions readable, bad input handled."""

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

import transforms
from transforms import pipeline, publish
from transforms.config import ConfigError, load_config
from transforms.stages.langid import bundled_lid176


def _v2(i, text, created="2024-01-01T00:00:00.000Z", **extra):
    return {"id": str(1000 + i), "text": text, "created_at": created, "author_id": "42", **extra}


def _write_jsonl(path, records, raw_lines=()):
    lines = [json.dumps(r).encode() for r in records] + list(raw_lines)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def reconcile(report):
    dropped = sum(s["dropped"] for s in report["stages"])
    assert report["input_records"] == report["output_records"] + dropped + report["rejected"]
    previous = report["input_records"] - report["rejected"]
    for s in report["stages"]:
        assert s["input"] == previous and s["output"] == s["input"] - s["dropped"]
        assert sum(s["reasons"].values()) == s["dropped"]
        previous = s["output"]


def test_run_reconciles_and_logs_every_drop(tmp_path):
    src = _write_jsonl(
        tmp_path / "a.jsonl",
        [_v2(0, "hello world"), _v2(1, "Hello   World"), _v2(2, "other"), _v2(3, "   ")],
        raw_lines=[b'{"id": "77", "text": "broken', b'{"text": "no id"}'],
    )
    table = tmp_path / "table"
    report = pipeline.run([str(src)], table, load_config())
    reconcile(report)
    assert report["input_records"] == 6 and report["rejected"] == 2 and report["output_records"] == 2
    drops = publish.read_log(table, "drops", report["run_id"]).to_pylist()
    assert sorted((d["id"], d["reason"]) for d in drops) == [("1001", "duplicate"), ("1003", "empty_text")]
    rejects = publish.read_log(table, "rejects", report["run_id"])
    assert rejects.num_rows == 2 and all(r for r in rejects.column("reason").to_pylist())
    rows = pl.read_delta(str(table))
    assert sorted(rows["id"].to_list()) == ["1000", "1002"]
    assert "dedupe_key" not in rows.columns  # working columns are never published


@pytest.mark.parametrize("stages", [["normalize"], ["normalize", "pii"]])
def test_published_reject_excerpts_hold_no_personal_data_when_the_run_scrubs_it(tmp_path, stages):
    broken = b'{"id": "77", "text": "call bob at +1 202 555 0143", "user": {"screen_name": "bob_smith", "name": "Bob'
    src = _write_jsonl(tmp_path / "a.jsonl", [_v2(0, "hello world")], raw_lines=[broken])
    config = load_config(stages=stages, settings={"pii": {"allow_dev_key": True}} if "pii" in stages else {})
    report = pipeline.run([str(src)], tmp_path / "table", config)
    (excerpt,) = publish.read_log(tmp_path / "table", "rejects", report["run_id"]).column("excerpt").to_pylist()
    if "pii" in stages:  # the record's shape stays, its content goes
        assert excerpt == '{"id": "00", "text": "xxxx xxx xx +0 000 000 0000", "user": {"screen_name": "xxx_xxxxx", "name": "xxx'
    else:  # the shards hold raw text too: the excerpt is the raw line
        assert excerpt == broken.decode()


@pytest.mark.parametrize("stages", [["normalize"], ["normalize", "pii"]])
def test_a_run_that_scrubs_pii_leaves_no_raw_steps_beside_the_table(tmp_path, stages):
    """The step cache holds raw text, authors and excerpts: kept for reuse, unless the run scrubbed them."""
    broken = b'{"id": "77", "text": "broken", "user": {"screen_name": "bob_smith"'
    src = _write_jsonl(tmp_path / "a.jsonl", [_v2(0, "mail bob.smith@example.org or call +1 202 555 0143")],
                       raw_lines=[broken])
    config = load_config(stages=stages, settings={"pii": {"allow_dev_key": True}} if "pii" in stages else {})
    table = tmp_path / "table"
    report = pipeline.run([str(src)], table, config)
    steps = sorted(p.name for p in (table / "_tweetmill" / "cache").iterdir())
    if "pii" not in stages:
        assert len(steps) == len(stages) + 1  # ingest and each stage, for the next run to reuse
        return
    assert steps == []
    files = [p for p in table.rglob("*") if p.is_file()]
    raw = [p for p in files for planted in (b"bob.smith@example.org", b"555 0143", b"bob_smith") if planted in p.read_bytes()]
    assert raw == []
    assert pipeline.run([str(src)], table, config)["version"] == report["version"]  # a rerun still publishes once


def test_each_version_reads_back_exactly(tmp_path):
    table = tmp_path / "t"
    first = pipeline.run([str(_write_jsonl(tmp_path / "1.jsonl", [_v2(i, f"tweet {i}") for i in range(5)]))], table, load_config())
    second = pipeline.run([str(_write_jsonl(tmp_path / "2.jsonl", [_v2(i, f"new {i}") for i in range(10, 13)]))], table, load_config())
    assert (first["version"], second["version"]) == (0, 1)
    v0 = pl.read_delta(str(table), version=0)
    v1 = pl.read_delta(str(table), version=1)
    assert sorted(v0["id"].to_list()) == [str(1000 + i) for i in range(5)]
    assert v1.height == 8
    history = publish.versions(table)
    assert [h["version"] for h in history] == [1, 0]
    assert history[0]["run_id"] == second["run_id"] and history[0]["output_records"] == 3
    assert history[0]["stages"][0]["name"] == "normalize"
    assert len(history[0]["config_hash"]) == 16 and history[0]["inputs"][0]["fingerprint"]


def test_overwrite_replaces_the_snapshot(tmp_path):
    table = tmp_path / "t"
    pipeline.run([str(_write_jsonl(tmp_path / "1.jsonl", [_v2(i, f"a {i}") for i in range(4)]))], table, load_config())
    pipeline.run([str(_write_jsonl(tmp_path / "2.jsonl", [_v2(9, "b")]))], table, load_config(), mode="overwrite")
    assert pl.read_delta(str(table))["id"].to_list() == ["1009"]
    assert pl.read_delta(str(table), version=0).height == 4


def test_an_overwrite_that_would_empty_the_table_is_refused(tmp_path):
    """An empty or all-dropped dump must not replace a table that training reads; onto no rows it may publish."""
    table = tmp_path / "t"
    empty = _write_jsonl(tmp_path / "empty.jsonl", [_v2(0, "   ")])  # read, then dropped as an empty text
    assert pipeline.run([str(empty)], table, load_config(), mode="overwrite")["output_records"] == 0
    pipeline.run([str(_write_jsonl(tmp_path / "1.jsonl", [_v2(1, "a tweet")]))], table, load_config())
    with pytest.raises(pipeline.EmptyOverwrite, match=r"refusing to overwrite .* \(1 rows\) with an empty version"):
        pipeline.run([str(empty)], table, load_config(), mode="overwrite")
    assert len(publish.versions(table)) == 2 and pl.read_delta(str(table)).height == 1


def test_an_append_with_other_columns_is_refused_before_any_work(tmp_path):
    """The commit would refuse it after all the work: the run's columns are known from its stages up front."""
    table, src = tmp_path / "t", _write_jsonl(tmp_path / "a.jsonl", [_v2(0, "mail me at x@example.org")])
    full = load_config(stages=["normalize", "dedupe_id", "dedupe_exact", "langid", "dedupe_minhash", "toxicity", "pii"],
                       settings={"pii": {"allow_dev_key": True}})
    pipeline.run([str(src)], table, full)
    assert publish.column_names(table) == pipeline.published_columns(full.build_stages())
    with pytest.raises(ConfigError) as caught:
        pipeline.run([str(src)], table, load_config())
    assert str(caught.value) == (
        f"{table} holds other columns than these stages publish (only the table has lang, lang_score, minhash_dup_of, "
        "minhash_cluster_size, toxicity, is_toxic, pii_types): append with the stages its versions ran (normalize, "
        "dedupe_id, dedupe_exact, langid, dedupe_minhash, toxicity, pii), or write to a new table or with --mode overwrite")
    assert len(list((table / "_tweetmill" / "cache").iterdir())) == 0  # nothing was ingested
    assert pipeline.run([str(src)], table, load_config(), mode="overwrite")["version"] == 1  # a new schema
    assert publish.column_names(table) == pipeline.published_columns(load_config().build_stages())
    assert pl.read_delta(str(table)).columns == publish.column_names(table)
    other = _write_jsonl(tmp_path / "b.jsonl", [_v2(5, "another tweet")])
    assert pipeline.run([str(other)], table, load_config())["version"] == 2


def test_an_append_whose_minhash_scheme_differs_from_the_tables_is_refused_before_any_work(tmp_path):
    """Its signatures could not be compared with the published rows' state: refused up front with what the table was
    made with; the same settings append, and a new scheme may start over with an overwrite."""
    table, src = tmp_path / "t", _write_jsonl(tmp_path / "a.jsonl", [_v2(0, "a first tweet about the weather today")])
    stages = ["normalize", "dedupe_minhash"]
    pipeline.run([str(src)], table, load_config(stages=stages))
    steps = sorted((table / "_tweetmill" / "cache").iterdir())  # the first run's, kept for a rerun
    other = load_config(stages=stages, settings={"dedupe_minhash": {"ngram": 3}})
    with pytest.raises(ConfigError) as caught:
        pipeline.run([str(src)], table, other)
    message = str(caught.value)
    assert message.startswith("dedupe_minhash: the table's MinHash history was made with {")
    assert "'ngram': 5" in message.split("this config uses")[0] and "'ngram': 3" in message.split("this config uses")[1]
    assert message.endswith("append with the settings the table was made with, or start a new table (or --mode "
                            "overwrite)")
    assert sorted((table / "_tweetmill" / "cache").iterdir()) == steps  # nothing was ingested
    again = _write_jsonl(tmp_path / "b.jsonl", [_v2(1, "a first tweet about the weather today!")])
    assert pipeline.run([str(again)], table, load_config(stages=stages))["output_records"] == 0  # a near duplicate
    assert pipeline.run([str(src)], table, other, mode="overwrite")["version"] == 2
    assert pipeline.run([str(again)], table, other)["version"] == 3


def test_reject_rate_limit_publishes_nothing_and_names_the_files(tmp_path):
    src = _write_jsonl(tmp_path / "bad.jsonl", [_v2(0, "ok")], raw_lines=[b"{nope", b"[1,", b"\xff\xfe"])
    good = _write_jsonl(tmp_path / "good.jsonl", [_v2(i, f"fine {i}") for i in range(1, 5)])
    table = tmp_path / "t"
    with pytest.raises(pipeline.RejectRateExceeded, match=r"3 of 4 .* above the limit of 50.0% \(the default "
                       "max_reject_rate: set it in the config or with --max-reject-rate\)"):
        pipeline.run([str(src)], table, load_config())  # the default limit: half the records
    assert not DeltaTable.is_deltatable(str(table))
    with pytest.raises(pipeline.RejectRateExceeded) as caught:
        pipeline.run([str(good), str(src)], table, load_config(max_reject_rate=0.1))
    assert str(caught.value) == (f"3 of 8 input records rejected (37.5%), above the limit of 10.0% (max_reject_rate); "
                                 f"most in {src} (3 of 4); nothing published")
    assert caught.value.files == [str(src)]


def test_shards_are_bounded_zstd_and_in_input_order(tmp_path):
    records = [_v2(i, f"distinct tweet number {i}", created=f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}.000Z") for i in range(250)]
    src = _write_jsonl(tmp_path / "a.jsonl", records)
    config = load_config(output={"shard_max_rows": 100, "row_group_rows": 50}, part_rows=64)
    report = pipeline.run([str(src)], tmp_path / "t", config)
    files = sorted(DeltaTable(str(tmp_path / "t")).file_uris())
    assert report["shards"] == len(files) == 3
    metas = [pq.read_metadata(f) for f in files]
    assert [m.num_rows for m in metas] == [100, 100, 50]
    assert metas[0].row_group(0).column(0).compression == "ZSTD"
    ids = pl.concat([pl.read_parquet(f) for f in files])["id"].to_list()
    assert ids == [str(1000 + i) for i in range(250)]


def test_same_input_same_rows(tmp_path):
    records = [_v2(i, f"tweet {i % 7} text") for i in range(40)]
    src = _write_jsonl(tmp_path / "a.jsonl", records)
    a = pipeline.run([str(src)], tmp_path / "a", load_config(part_rows=7))
    b = pipeline.run([str(src)], tmp_path / "b", load_config(part_rows=1000))
    ra = pl.read_delta(str(tmp_path / "a")).drop("source_file")
    rb = pl.read_delta(str(tmp_path / "b")).drop("source_file")
    assert ra.equals(rb) and ra.height == 7
    assert a["stages"] == b["stages"]


def test_annotate_keeps_every_row_with_stage_columns(tmp_path):
    src = _write_jsonl(tmp_path / "a.jsonl", [_v2(0, "Same &amp; text"), _v2(1, "same & TEXT"), _v2(2, "RT @x: same & text", referenced_tweets=[{"type": "retweeted", "id": "1000"}])])
    out = tmp_path / "ann.parquet"
    summary = pipeline.annotate([str(src)], out, load_config())
    rows = {r["id"]: r for r in pl.read_parquet(out).to_dicts()}
    assert summary["output_records"] == 3 and len(rows) == 3
    assert rows["1000"]["text"] == "Same &amp; text" and rows["1000"]["text_out"] == "Same & text"
    assert rows["1001"]["dup_of"] == "1000" and rows["1001"]["drop_reason"] == "dedupe_exact:duplicate"
    assert rows["1002"]["dup_of"] == "1000" and rows["1002"]["drop_reason"] == "dedupe_exact:retweet"
    assert rows["1000"]["dup_of"] is None and rows["1000"]["drop_reason"] is None


def test_annotate_drops_exactly_what_run_drops(tmp_path):
    """Rows an earlier stage drops are not there for a later dedupe in a run, so in annotate they keep nobody out:
    a tweet whose id or text was first seen on a row dropped before is kept, as run keeps it."""
    records = [
        {"id": "10", "text": "alpha text about the weather in the park today", "created_at": "2023-01-01T00:00:00Z"},
        {"id": "10", "text": "beta different text about my two cats sleeping", "created_at": "2023-01-02T00:00:00Z"},
        {"id": "11", "text": "beta different text about my two cats sleeping", "created_at": "2023-01-03T00:00:00Z"},
        {"id": "12", "text": "beta different text about my two cats sleeping!", "created_at": "2023-01-04T00:00:00Z"},
        {"id": "20", "text": "\u200b", "created_at": "2023-01-01T00:00:00Z"},
        {"id": "20", "text": "gamma a tweet whose id was first seen with an empty text", "created_at": "2023-01-02T00:00:00Z"},
    ]
    src = _write_jsonl(tmp_path / "a.jsonl", records)
    config = load_config(stages=["normalize", "dedupe_id", "dedupe_exact", "dedupe_minhash"])
    report = pipeline.run([str(src)], tmp_path / "table", config)
    published = sorted(pl.read_delta(str(tmp_path / "table"))["text"].to_list())
    pipeline.annotate([str(src)], tmp_path / "ann.parquet", config)
    annotated = pl.read_parquet(tmp_path / "ann.parquet")
    assert sorted(annotated.filter(pl.col("drop_reason").is_null())["text_out"].to_list()) == published
    assert sorted(annotated["drop_reason"].drop_nulls().to_list()) == sorted(
        f"{s['name']}:{reason}" for s in report["stages"] for reason, n in s["reasons"].items() for _ in range(n))
    assert annotated.filter(pl.col("id") == "11")["drop_reason"].to_list() == [None]


def test_annotate_puts_the_records_it_could_not_parse_beside_its_output(tmp_path):
    src = _write_jsonl(tmp_path / "a.jsonl", [_v2(0, "fine")], raw_lines=[b'{"id": "7", "text": "broken'])
    summary = pipeline.annotate([str(src)], tmp_path / "ann.parquet", load_config())
    assert summary["rejects"] == str(tmp_path / "ann.rejects.parquet")
    rejects = pl.read_parquet(tmp_path / "ann.rejects.parquet")
    assert rejects["source_line"].to_list() == [2] and rejects["reason"][0].startswith("malformed JSON")
    clean = _write_jsonl(tmp_path / "b.jsonl", [_v2(0, "fine")])
    assert "rejects" not in pipeline.annotate([str(clean)], tmp_path / "ann.parquet", load_config())
    assert not (tmp_path / "ann.rejects.parquet").exists()  # not an older run's


def test_compressed_and_plain_inputs_give_the_same_rows(tmp_path):
    records = [_v2(i, f"tweet {i}") for i in range(20)]
    plain = _write_jsonl(tmp_path / "p.jsonl", records)
    gz = tmp_path / "z.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    a = pipeline.run([str(plain)], tmp_path / "a", load_config())
    b = pipeline.run([str(gz)], tmp_path / "b", load_config())
    assert a["output_records"] == b["output_records"] == 20
    assert pl.read_delta(str(tmp_path / "a"))["id"].to_list() == pl.read_delta(str(tmp_path / "b"))["id"].to_list()


def test_append_dedupes_against_rows_already_published(tmp_path):
    table = tmp_path / "t"
    config = load_config(stages=["normalize", "dedupe_exact", "dedupe_minhash"])
    first = pipeline.run([str(_write_jsonl(tmp_path / "1.jsonl", [
        _v2(0, "the quick brown fox jumps over the lazy dog near the river bank today"),
        _v2(1, "completely different words about weather and rain in the city"),
    ]))], table, config)
    second = pipeline.run([str(_write_jsonl(tmp_path / "2.jsonl", [
        _v2(10, "The quick brown fox jumps over the lazy dog near the river bank today!!", created="2023-01-01T00:00:00.000Z"),
        _v2(11, "completely different words about weather and rain in the city"),
        _v2(12, "a new tweet that nobody has written before at all"),
    ]))], table, config)
    reconcile(second)
    assert first["output_records"] == 2 and second["output_records"] == 1
    drops = {d["id"]: (d["stage"], d["dup_of"]) for d in publish.read_log(table, "drops", second["run_id"]).to_pylist()}
    # Published rows always win, even against an earlier created_at in the new batch.
    assert drops == {"1011": ("dedupe_exact", "1001"), "1010": ("dedupe_minhash", "1000")}
    assert sorted(pl.read_delta(str(table))["id"].to_list()) == ["1000", "1001", "1012"]
    overwrite = pipeline.run([str(tmp_path / "2.jsonl")], table, config, mode="overwrite")
    assert overwrite["output_records"] == 3  # a new snapshot does not dedupe against the old one


def test_an_append_reads_every_history_file_and_names_the_published_row_it_repeats(tmp_path):
    """Two published runs of two parts each (four history files per stage): a third run's copies of rows from any
    of them are dropped as duplicates of that very row, exact and near."""
    table = tmp_path / "t"
    config = load_config(stages=["normalize", "dedupe_exact", "dedupe_minhash"], part_rows=2)
    texts = ["the quick brown fox jumps over the lazy dog near the river bank today",
             "completely different words about weather and rain in the city tonight",
             "our team finally won the cup after twenty long years of waiting",
             "new phone battery lasts two days which honestly surprised me a lot",
             "the bakery on main street sells the best sourdough bread in town",
             "traffic on the bridge is terrible again so i am walking to work",
             "just finished reading a novel about sailors lost in the arctic sea",
             "my cat knocked every single plant off the windowsill this morning"]
    for run in range(2):
        rows = [_v2(4 * run + i, texts[4 * run + i]) for i in range(4)]
        assert pipeline.run([str(_write_jsonl(tmp_path / f"{run}.jsonl", rows))], table, config)["output_records"] == 4
    for stage in ("dedupe_exact", "dedupe_minhash"):
        assert len(pipeline.history_files(table, stage)) == 4
    third = pipeline.run([str(_write_jsonl(tmp_path / "2.jsonl", [
        _v2(20, texts[1]), _v2(21, texts[3] + "!!"), _v2(22, texts[5]), _v2(23, texts[7] + "!!"),
        _v2(24, "something nobody said before about cooking pasta at midnight"),
    ]))], table, config)
    reconcile(third)
    drops = {d["id"]: (d["stage"], d["dup_of"]) for d in publish.read_log(table, "drops", third["run_id"]).to_pylist()}
    assert drops == {"1020": ("dedupe_exact", "1001"), "1021": ("dedupe_minhash", "1003"),
                     "1022": ("dedupe_exact", "1005"), "1023": ("dedupe_minhash", "1007")}
    assert third["output_records"] == 1


def test_a_history_kept_as_one_file_per_run_still_dedupes_appends(tmp_path):
    """Tables written before 2026-12-07 hold each run's dedupe state as one file, not a folder of one per part."""
    table = tmp_path / "t"
    config = load_config(stages=["normalize", "dedupe_minhash"])
    text = "the quick brown fox jumps over the lazy dog near the river bank today"
    first = pipeline.run([str(_write_jsonl(tmp_path / "1.jsonl", [_v2(0, text), _v2(1, "rain in the city")]))],
                         table, config)
    folder = publish.sidecar(table, "history") / "dedupe_minhash" / first["run_id"]
    state = pa.concat_tables(pq.read_table(f) for f in sorted(folder.iterdir()))
    shutil.rmtree(folder)
    pq.write_table(state, folder.with_suffix(".parquet"))
    second = pipeline.run([str(_write_jsonl(tmp_path / "2.jsonl", [_v2(10, text + "!!"), _v2(11, "a new tweet")]))],
                          table, config)
    drops = publish.read_log(table, "drops", second["run_id"]).to_pylist()
    assert [(d["id"], d["dup_of"]) for d in drops] == [("1010", "1000")] and second["output_records"] == 1
    assert [run for run, _ in pipeline.history_files(table, "dedupe_minhash")] == [first["run_id"], second["run_id"]]


def test_a_version_names_the_models_that_judged_its_rows(tmp_path):
    src = _write_jsonl(tmp_path / "a.jsonl", [_v2(0, "what a lovely morning by the river"), _v2(1, "you stupid idiot")])
    table = tmp_path / "table"
    report = pipeline.run([str(src)], table, load_config(stages=["normalize", "langid", "toxicity"]))
    models = Path(transforms.__file__).parent / "models"
    cards = {name: json.loads((models / name / "metrics.json").read_text())["model_sha256"]
             for name in ("langid", "toxicity")}
    lid176 = hashlib.sha256(bundled_lid176().read_bytes()).hexdigest()
    assert report["models"] == [
        {"stage": "langid", "file": "lid.176.ftz", "sha256": lid176},
        {"stage": "langid", "file": "supplement.ftz", "sha256": cards["langid"]},
        {"stage": "toxicity", "file": "toxicity.ftz", "sha256": cards["toxicity"]},
    ]
    assert publish.versions(table)[0]["models"] == report["models"]
    card = Path(report["data_card"]).read_text()
    assert f"toxicity: toxicity.ftz (sha256 {cards['toxicity'][:12]})" in card


def test_an_input_without_records_publishes_an_empty_version_and_appends_go_on(tmp_path):
    """An hourly dump that holds nothing: a version of 0 rows with its report and card, not a crash."""
    table = tmp_path / "table"
    config = load_config(stages=["normalize", "dedupe_exact", "langid", "dedupe_minhash", "toxicity", "pii"],
                         settings={"pii": {"allow_dev_key": True}})
    (tmp_path / "empty.jsonl").write_bytes(b"")
    first = pipeline.run([str(tmp_path / "empty.jsonl")], table, config)
    reconcile(first)
    assert (first["version"], first["input_records"], first["output_records"]) == (0, 0, 0)
    assert pl.read_delta(str(table)).height == 0
    assert "| rows | 0 |" in Path(first["data_card"]).read_text()
    second = pipeline.run([str(_write_jsonl(tmp_path / "a.jsonl", [_v2(0, "a tweet that is long enough")]))], table,
                          config)
    assert second["version"] == 1 and pl.read_delta(str(table)).height == 1
    third = pipeline.run([str(tmp_path / "empty.jsonl")], table, config)
    assert third["version"] == 2 and pl.read_delta(str(table)).height == 1


def test_an_id_beyond_64_bits_is_rejected_and_the_other_records_go_on(tmp_path):
    big = str(2**64)  # one above the largest 64-bit id; 2**64 - 1 itself is a valid id
    src = _write_jsonl(tmp_path / "a.jsonl", [_v2(0, "fine"), {**_v2(1, "too big"), "id": big},
                                              {**_v2(2, "the largest"), "id": str(2**64 - 1)},
                                              {**_v2(3, "zeros"), "id": "000" + str(2**64 - 1)}])
    report = pipeline.run([str(src)], tmp_path / "table", load_config())
    reconcile(report)
    assert (report["rejected"], report["output_records"]) == (1, 2)
    (reject,) = publish.read_log(tmp_path / "table", "rejects", report["run_id"]).to_pylist()
    assert reject["reason"] == f"record id is above the 64-bit range ({2**64 - 1})"
    (drop,) = publish.read_log(tmp_path / "table", "drops", report["run_id"]).to_pylist()  # leading zeros: one id
    assert (drop["id"], drop["stage"], drop["dup_of"]) == (str(2**64 - 1), "dedupe_id", str(2**64 - 1))
    kept = pl.read_delta(str(tmp_path / "table")).sort("text")
    assert kept["id"].to_list() == ["1000", str(2**64 - 1)] and kept["text"].to_list() == ["fine", "the largest"]


def test_a_spreadsheet_rounded_id_is_rejected_with_the_reason(tmp_path):
    src = tmp_path / "export.csv"
    src.write_text("id,text,created_at\n1.23457E+18,rounded by a spreadsheet,2024-01-01\n"
                   "1234567890123456789,kept as text,2024-01-01\n")
    report = pipeline.run([str(src)], tmp_path / "table", load_config())
    assert (report["rejected"], report["output_records"]) == (1, 1)
    (reject,) = publish.read_log(tmp_path / "table", "rejects", report["run_id"]).to_pylist()
    assert reject["reason"] == "record id is in scientific notation (a spreadsheet rounded it: export ids as text)"


@pytest.mark.slow
def test_stages_that_hold_the_gil_give_the_same_rows_in_worker_processes(tmp_path):
    """langid, toxicity and pii run in one worker process per core when a step has several parts: same rows,
    columns and drop logs as in one process (threads: 1)."""
    from transforms import demo

    demo.write_demo_corpus(tmp_path / "raw", n_tweets=3000)
    tables = {}
    for threads in (1, 2):
        config = load_config(stages=["normalize", "langid", "toxicity", "pii"], part_rows=400,
                             engine_options={"threads": threads}, settings={"pii": {"allow_dev_key": True}})
        report = pipeline.run([str(tmp_path / "raw")], tmp_path / f"t{threads}", config)
        assert report["stages"][1]["input"] > 2 * 400  # several parts: the pool is used
        tables[threads] = (pl.read_delta(str(tmp_path / f"t{threads}")).drop("source_file").sort("id"),
                           pl.from_arrow(publish.read_log(tmp_path / f"t{threads}", "drops")).drop("run_id").sort("id"),
                           [{k: v for k, v in s.items() if k != "reused"} for s in report["stages"]])
    assert tables[1][0].equals(tables[2][0]) and tables[1][1].equals(tables[2][1]) and tables[1][2] == tables[2][2]


UNGUARDED = """
import sys
from transforms import demo, pipeline
from transforms.config import load_config

print("top level", flush=True)
demo.write_demo_corpus(sys.argv[1] + "/raw", n_tweets=1500)
config = load_config(stages=["normalize", "langid"], part_rows=400, engine_options={"threads": 2})
print("published", pipeline.run([sys.argv[1] + "/raw"], sys.argv[1] + "/t", config)["output_records"], flush=True)
"""


@pytest.mark.slow
def test_a_script_without_a_main_guard_runs_once_with_worker_processes(tmp_path):
    """Worker processes do not re-run the caller's script (multiprocessing would, for a script with no
    `if __name__ == "__main__":` guard, side effects included)."""
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=300,
                         cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0] == "top level" and lines.count("top level") == 1 and lines[-1].startswith("published ")


@pytest.mark.slow
def test_worker_processes_see_the_environment_of_now_and_raise_setup_errors_as_themselves(tmp_path, monkeypatch):
    """Workers come from a server process started earlier: a key set since then still reaches them, and a stage
    that cannot set up fails with its own error, not a broken pool."""
    from tests.helpers import tweets, write_parts
    from transforms.engines.polars import PolarsEngine
    from transforms.engines.staging import read_part
    from transforms.stages.langid import LanguageId
    from transforms.stages.pii import MissingKey, PiiScrub

    rows = [{"id": str(i), "text": f"mail me at person{i}@example.com today", "author_id": "1"} for i in range(40)]
    parts = write_parts(tweets(rows), tmp_path / "in", 10)
    engine = PolarsEngine(part_rows=10, threads=2)
    engine.run_stage(LanguageId(), parts, tmp_path / "lang", False)  # the worker server is running from here on
    pii = PiiScrub(PiiScrub.Config(pseudonym_key_env="TWEETMILL_KEY_SET_LATE"))
    with pytest.raises(MissingKey, match="TWEETMILL_KEY_SET_LATE"):
        engine.run_stage(pii, parts, tmp_path / "no-key", False)
    monkeypatch.setenv("TWEETMILL_KEY_SET_LATE", "a-key-of-twenty-chars")
    result = engine.run_stage(PiiScrub(pii.config), parts, tmp_path / "pii", False)
    scrubbed = [r["text"] for p in result.parts for r in read_part(p).to_pylist()]
    assert len(scrubbed) == 40 and all("<EMAIL>" in t for t in scrubbed)
