"""The data-quality gate: suites run with Great Expectations on synthetic curated output (tests/curated.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expectations.gate import validate_input, validate_output, validate_version
from expectations.parameters import suite_parameters
from expectations.residual_pii import luhn_valid, residual_pii
from expectations.suites import applicable, load_suite
from tests.curated import (
    ALL_STAGES,
    curated_rows,
    dirty_run,
    forbid_slices_here,
    publish_run,
    report_for,
    verdicts,
    with_values,
    write_shards,
)
from tests.helpers import tweets
from transforms.config import PipelineConfig

LANGS = ["de", "en", "es", "fr"]
CONFIG = PipelineConfig(settings={"langid": {"languages": LANGS}})


def _gate(tmp_path, rows: pa.Table, *, config=CONFIG, report=None, stages=ALL_STAGES, shard_rows=100):
    shards = write_shards(rows, tmp_path / "data" / "run", shard_rows, 50)
    report = report or report_for("run", rows.num_rows, stages)
    return validate_output(shards, config=config, report=report, out_dir=tmp_path / "gate")


def _failure(result, expectation: str, column: str) -> dict:
    found = [f for f in result.failures if f["expectation"] == expectation and f["column"] == column]
    seen = [(f["expectation"], f["column"]) for f in result.failures]
    assert len(found) == 1, f"expected one failure of {expectation} on {column}, got {seen}"
    return found[0]


def _ids(table: pa.Table, rows) -> list[str]:
    return [table.column("id")[i].as_py() for i in rows]


# -- a clean run, and one with every kind of violation (each gate run costs ~1 s, so they are shared) -----------

@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clean")
    return _gate(tmp, curated_rows(300, seed=1))


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    rows = curated_rows(300, seed=2)
    rows = with_values(rows, "lang", {3: "xx", 40: "zz"})
    rows = with_values(rows, "toxicity", {7: 0.93})
    rows = with_values(rows, "is_toxic", {7: True})
    rows = with_values(rows, "text", {11: "mail bob.example@example.com now", 12: "hi @somebody_real", 13: "@user is fine"})
    rows = with_values(rows, "dedupe_hash", {20: rows.column("dedupe_hash")[21].as_py()})
    rows = with_values(rows, "id", {30: "12e5"})
    tmp = tmp_path_factory.mktemp("dirty")
    return rows, tmp, _gate(tmp, rows)


def test_clean_output_passes_and_writes_results_and_docs(clean):
    assert clean.success and clean.failures == []
    plan = applicable(load_suite("curated"), ALL_STAGES, suite_parameters(CONFIG, [report_for("run", 300, ALL_STAGES)]))
    assert clean.evaluated == sum(len(v) for v in plan.values()) > 25
    stored = json.loads(clean.result_path.read_text())
    assert stored["success"] is True and set(stored["validations"]) == {"rows", "schema", "shards", "funnel"}
    assert clean.docs_path.name == "index.html" and clean.docs_path.exists()
    pages = list(clean.docs_path.parent.rglob("*.html"))
    assert len(pages) >= 5  # the index, and a page per suite and per validation
    assert "passed" in clean.summary_markdown()


def test_violations_are_named_with_example_ids(dirty):
    rows, _, result = dirty
    assert not result.success
    lang = _failure(result, "expect_column_values_to_be_in_set", "lang")
    assert lang["stage"] == "langid" and lang["unexpected_count"] == 2
    assert sorted(lang["example_ids"]) == sorted(_ids(rows, [3, 40]))
    assert sorted(lang["observed"]["examples"]) == ["xx", "zz"]
    assert _failure(result, "expect_column_values_to_be_between", "toxicity")["example_ids"] == _ids(rows, [7])
    assert _failure(result, "expect_column_values_to_be_in_set", "is_toxic")["example_ids"] == _ids(rows, [7])
    duplicates = _failure(result, "expect_column_values_to_be_unique", "dedupe_hash")
    assert sorted(duplicates["example_ids"]) == sorted(_ids(rows, [20, 21]))
    assert _failure(result, "expect_column_values_to_match_regex", "id")["example_ids"] == ["12e5"]
    pii = _failure(result, "expect_column_values_to_be_null", "residual_pii")
    assert sorted(pii["example_ids"]) == sorted(_ids(rows, [11, 12]))  # "@user" (row 13) is the placeholder
    assert sorted(pii["observed"]["examples"]) == ["email", "mention"]
    assert len(result.failures) == 6  # nothing else: counts, schema and shards are fine


def test_failures_never_show_tweet_text(dirty):
    _, tmp, result = dirty
    written = [p.read_text(errors="replace") for p in (tmp / "gate").rglob("*") if p.suffix in (".json", ".html")]
    assert written and result.summary_markdown()
    for secret in ("bob.example@example.com", "somebody_real", "mail ", "hi @"):
        assert not any(secret in text for text in written + [result.summary_markdown(), json.dumps(result.failures)])


def test_summary_markdown_lists_failures(dirty):
    rows, _, result = dirty
    md = result.summary_markdown()
    assert "FAILED" in md and md.count("\n| expect_") == len(result.failures)
    assert "expect_column_values_to_be_in_set | rows | lang | langid" in md and _ids(rows, [3])[0] in md


def test_a_large_run_is_checked_in_slices_with_the_same_verdicts(tmp_path, monkeypatch):
    """Over SLICE_ROWS rows the rows frame is built slice by slice and uniqueness is checked in hash buckets:
    the same failures, counts and example ids as one frame of every row, duplicates across slices included."""
    from expectations import gate

    rows, shards, report = dirty_run(tmp_path)
    whole = validate_output(shards, config=CONFIG, report=report, out_dir=tmp_path / "whole")
    monkeypatch.setattr(gate, "SLICE_ROWS", 100)
    sliced = validate_output(shards, config=CONFIG, report=report, out_dir=tmp_path / "sliced")
    assert not sliced.success and (sliced.evaluated, verdicts(sliced)) == (whole.evaluated, verdicts(whole))
    assert verdicts(sliced)[("expect_column_values_to_be_unique", "id")][:2] == (2, _ids(rows, [60]))  # one id, twice
    assert verdicts(sliced)[("expect_column_values_to_be_unique", "dedupe_hash")][0] == 4
    assert len(sliced.failures) == 6  # lang, toxicity, residual PII, the id's pattern, two uniqueness checks
    stored = json.loads(sliced.result_path.read_text())["validations"]["rows"]
    assert stored["statistics"]["evaluated_expectations"] == len(stored["results"]) and not stored["success"]
    assert sorted(p.name for p in (tmp_path / "sliced").iterdir()) == ["data_docs", "validation.json"]
    pages = {run: list((tmp_path / run / "data_docs" / "validations").rglob("*.html")) for run in ("whole", "sliced")}
    # one page a validation, not one a slice: rows, schema, shards, funnel; in slices rows is four (row-wise checks,
    # the row count, each uniqueness), each page the merged result
    assert (len(pages["whole"]), len(pages["sliced"])) == (4, 7)
    assert validate_output(shards[:1], config=CONFIG, report=report_for("run", 100, ALL_STAGES),
                           out_dir=tmp_path / "one").evaluated == whole.evaluated


def test_the_polars_engine_checks_a_large_runs_slices_in_worker_processes(tmp_path, monkeypatch):
    """With an engine's runner the slices and buckets are checked in its workers: the verdicts, merged result and
    Data Docs pages of the gate checking them itself."""
    from expectations import gate
    from transforms.engines.polars import PolarsEngine

    _, shards, report = dirty_run(tmp_path)
    monkeypatch.setattr(gate, "SLICE_ROWS", 100)
    here = validate_output(shards, config=CONFIG, report=report, out_dir=tmp_path / "here")
    forbid_slices_here(monkeypatch)
    workers = validate_output(shards, config=CONFIG, report=report, out_dir=tmp_path / "workers",
                              runner=PolarsEngine(threads=2).run_tasks)
    assert not workers.success and (workers.evaluated, verdicts(workers)) == (here.evaluated, verdicts(here))
    stored = [json.loads((tmp_path / run / "validation.json").read_text())["validations"]["rows"]["statistics"]
              for run in ("here", "workers")]
    assert stored[0] == stored[1]
    pages = [sorted(p.parent.relative_to(tmp_path / run).parts[2:4]
                    for p in (tmp_path / run / "data_docs" / "validations").rglob("*.html"))
             for run in ("here", "workers")]
    assert pages[0] == pages[1] and len(pages[0]) == 7


# -- parameters follow the config, expectations follow the stages --------------------------------------------------

def test_toxicity_threshold_comes_from_the_config(tmp_path):
    rows = with_values(curated_rows(200, seed=3), "toxicity", {5: 0.3, 6: 0.35})
    strict = PipelineConfig(settings={"langid": {"languages": LANGS}, "toxicity": {"threshold": 0.3}})
    result = _gate(tmp_path, rows, config=strict)
    tox = _failure(result, "expect_column_values_to_be_between", "toxicity")
    expected = rows.filter(pa.compute.greater_equal(rows.column("toxicity"), 0.3)).column("id").to_pylist()
    assert tox["unexpected_count"] == len(expected) >= 2 and set(tox["example_ids"]) <= set(expected)
    assert json.loads(result.result_path.read_text())["parameters"]["toxicity_threshold"] == 0.3
    assert _gate(tmp_path / "default", rows).success  # the default threshold (0.5) lets them through


def test_per_language_score_thresholds(tmp_path):
    rows = curated_rows(400, seed=4)
    config = PipelineConfig(settings={"langid": {"languages": LANGS, "min_score": 0.5, "thresholds": {"fr": 0.9}}})
    result = _gate(tmp_path, rows, config=config)
    frame = pl.from_arrow(rows)
    low_fr = frame.filter((pl.col("lang") == "fr") & (pl.col("lang_score") < pl.lit(0.9, pl.Float32)))
    failure = _failure(result, "expect_column_pair_values_a_to_be_greater_than_b", "lang_score, lang_min_score")
    assert failure["unexpected_count"] == low_fr.height > 0
    assert set(failure["example_ids"]) <= set(low_fr["id"].to_list())
    assert len(result.failures) == 1


def test_float32_scores_compare_as_the_langid_stage_compares(tmp_path):
    # The stage widens its float32 scores to float64 before comparing: float32(0.65) is below a 0.65 threshold.
    rows = with_values(curated_rows(50, seed=5), "lang_score", {i: 0.7 for i in range(50)})
    rows = with_values(rows, "lang_score", {0: 0.65, 1: 0.6500001})
    config = PipelineConfig(settings={"langid": {"languages": LANGS, "min_score": 0.65}})
    result = _gate(tmp_path, rows, config=config)
    failure = _failure(result, "expect_column_pair_values_a_to_be_greater_than_b", "lang_score, lang_min_score")
    assert failure["example_ids"] == _ids(rows, [0]) and len(result.failures) == 1


def test_only_the_stages_that_ran_are_checked(tmp_path):
    stages = ("normalize", "dedupe_exact")
    rows = curated_rows(200, seed=6, stages=stages)
    result = _gate(tmp_path, rows, stages=stages)
    assert result.success
    validations = json.loads(result.result_path.read_text())["validations"].values()
    checked = [r["expectation_config"] for v in validations for r in v["results"]]
    columns = {c["kwargs"].get("column") for c in checked}
    assert {"id", "dedupe_hash", "text_length"} <= columns
    assert not columns & {"lang", "lang_score", "toxicity", "is_toxic", "residual_pii", "minhash_dup_of"}
    assert {c["meta"].get("stage") for c in checked} == {None, "dedupe_exact"}
    # the same rows claimed to have passed langid: its columns are missing, and the gate says so
    result = _gate(tmp_path / "claimed", rows, stages=(*stages, "langid"))
    schema = _failure(result, "expect_column_distinct_values_to_contain_set", "field")
    assert sorted(schema["observed"]["missing"]) == ["lang: string", "lang_score: float"]
    lang = _failure(result, "expect_column_values_to_be_in_set", "lang")
    assert 'column "lang" in BatchData does not exist' in lang["observed"]
    assert all(f["stage"] == "langid" for f in result.failures)


def test_languages_not_configured_means_any_language(tmp_path):
    rows = with_values(curated_rows(100, seed=7), "lang", {0: "xx"})
    assert _gate(tmp_path, rows, config=PipelineConfig()).success


# -- counts and shards ---------------------------------------------------------------------------------------------

def test_counts_must_reconcile_with_the_report(tmp_path):
    rows = curated_rows(250, seed=8)
    report = report_for("run", rows.num_rows, ALL_STAGES, dropped={"dedupe_exact": 10, "langid": 5})
    assert _gate(tmp_path / "ok", rows, report=report).success
    report["output_records"] += 1
    report["stages"][2]["reasons"] = {"lang:xx": 4}  # langid dropped 5, reasons account for 4
    result = _gate(tmp_path / "bad", rows, report=report)
    assert _failure(result, "expect_table_row_count_to_equal", None)["observed"] == 250
    assert _failure(result, "expect_column_sum_to_be_between", "rows")["observed"] == 250
    assert _failure(result, "expect_column_values_to_be_between", "unaccounted")["example_ids"] == ["run:publish"]
    reasons = _failure(result, "expect_column_pair_values_to_be_equal", "dropped, reasons_total")
    assert reasons["example_ids"] == ["run:langid"]
    assert len(result.failures) == 4


def test_shard_bounds_come_from_the_output_config(tmp_path):
    rows = curated_rows(300, seed=9)
    config = PipelineConfig(settings={"langid": {"languages": LANGS}},
                            output={"shard_max_rows": 120, "row_group_rows": 40})
    result = _gate(tmp_path, rows, config=config, shard_rows=150)  # shards of 150 rows in row groups of 50
    by_column = {f["column"]: f for f in result.failures}
    assert set(by_column) == {"rows", "max_row_group_rows"}
    assert by_column["rows"]["example_ids"] == ["run/part-00000.zstd.parquet", "run/part-00001.zstd.parquet"]


def test_internal_columns_must_not_be_published(tmp_path):
    rows = curated_rows(100, seed=10)
    rows = rows.append_column("dedupe_key", pa.array(["k"] * rows.num_rows))
    result = _gate(tmp_path, rows)
    assert _failure(result, "expect_column_values_to_not_be_in_set", "name")["example_ids"] == ["dedupe_key"]
    assert len(result.failures) == 1


def test_no_rows_no_shards(tmp_path):
    report = report_for("run", 0, ALL_STAGES, dropped={"normalize": 3})
    result = validate_output([], config=CONFIG, report=report, out_dir=tmp_path / "gate")
    assert result.success and any("no shards" in n for n in result.notes)


# -- raw input and published versions ------------------------------------------------------------------------------

def test_raw_suite_on_ingested_rows(tmp_path):
    good = tweets([{"id": "1", "text": "a"}, {"id": "2", "text": "b"}])
    assert validate_input([good], out_dir=tmp_path / "ok").success
    bad = good.set_column(0, "id", pa.array(["3", "4.0"]))
    bad = bad.set_column(1, "text", pa.array(["x", None]))
    pq.write_table(bad, tmp_path / "part.parquet")
    result = validate_input([tmp_path / "part.parquet"])
    assert result.result_path is None and not result.success
    assert _failure(result, "expect_column_values_to_match_regex", "id")["example_ids"] == ["4.0"]
    assert _failure(result, "expect_column_values_to_not_be_null", "text_length")["example_ids"] == ["4.0"]
    missing = validate_input([bad.drop_columns(["lang_hint"])]).failures[0]
    assert missing["column"] == "field" and missing["observed"] == {"missing": ["lang_hint: string"]}


def test_row_slices_hold_at_most_their_rows_and_every_source_once():
    from expectations.frames import row_slices

    def sizes(counts, rows):
        tables = [pa.table({"a": range(n)}) for n in counts]
        return [[t.num_rows for t in s] for s in row_slices(tables, counts, rows)]

    assert sizes([0, 3, 0, 2, 5, 1], 4) == [[0, 3, 0], [2], [5], [1]]  # a larger source alone; empty ones ride along
    assert sizes([1, 1, 1], 4) == [[1, 1, 1]] and sizes([0], 4) == [[0]] and sizes([], 4) == []


def test_hash_buckets_bring_equal_values_together_and_deal_nulls_out(tmp_path):
    from expectations.frames import bucket_frame, spread_buckets

    slices = [[pa.table({"id": [f"{s}{i}" for i in range(30)], "h": [None] * 29 + [7]})] for s in "abc"]
    for i, rows in enumerate(slices):
        spread_buckets(rows, i, "h", 4, tmp_path)
    buckets = [bucket_frame(tmp_path, b, "h") for b in range(4)]
    assert sum(map(len, buckets)) == 90 and max(map(len, buckets)) <= 32  # 87 nulls spread, not in one bucket
    assert (list(bucket_frame(tmp_path, 9, "h").columns), len(bucket_frame(tmp_path, 9, "h"))) == (["h", "id"], 0)
    assert [sorted(b.loc[b["h"] == 7, "id"]) for b in buckets if (b["h"] == 7).any()] == [["a29", "b29", "c29"]]


def _page_status(page: Path) -> str:
    """The status a Data Docs validation page shows."""
    text = " ".join(re.sub(r"<[^>]+>", " ", page.read_text()).split())
    return re.search(r"Status: (Succeeded|Failed)", text).group(1)


def test_raw_suite_in_slices(monkeypatch, tmp_path):
    """The raw suite over many ingested parts, slice by slice: the failures of one frame of every row, and a Data
    Docs page with the merged verdict (the first slice passes, the others do not)."""
    from expectations import gate

    parts = [tweets([{"id": "1", "text": "a"}, {"id": "2", "text": "b"}]),
             tweets([{"id": "3", "text": None}, {"id": "4.0", "text": "d"}]), tweets([{"id": "x5", "text": None}])]
    whole = validate_input(parts)
    monkeypatch.setattr(gate, "SLICE_ROWS", 2)
    sliced = validate_input(parts, out_dir=tmp_path)
    assert sliced.failures == whole.failures and len(whole.failures) == 2
    assert _failure(sliced, "expect_column_values_to_not_be_null", "text_length")["unexpected_count"] == 2
    pages = list((tmp_path / "data_docs" / "validations" / "raw" / "rows").rglob("*.html"))
    assert len(pages) == 1 and _page_status(pages[0]) == "Failed"


def test_raw_suite_on_working_parts_in_the_engines_workers(monkeypatch, tmp_path):
    """The pipeline hands the raw suite the ingest step's parts (Arrow IPC files), which a large run's slices read
    in the engine's workers: the failures of the gate on the same rows as tables."""
    from expectations import gate
    from transforms.engines.polars import PolarsEngine
    from transforms.engines.staging import write_part

    tables = [tweets([{"id": str(i), "text": "a"} for i in range(k, k + 3)]) for k in (1, 4, 7)]
    tables[1] = tweets([{"id": "4", "text": None}, {"id": "5.0", "text": "b"}, {"id": "6", "text": None}])
    parts = []
    for i, table in enumerate(tables):
        parts.append(tmp_path / f"part-{i}.arrow")
        write_part(table, parts[-1], "zstd")
    whole = validate_input(tables)
    monkeypatch.setattr(gate, "SLICE_ROWS", 3)
    forbid_slices_here(monkeypatch)
    sliced = validate_input(parts, out_dir=tmp_path / "gate", runner=PolarsEngine(threads=2).run_tasks)
    assert sliced.failures == whole.failures and len(whole.failures) == 2
    assert _failure(sliced, "expect_column_values_to_not_be_null", "text_length")["unexpected_count"] == 2


def test_validate_version_rechecks_a_published_version(tmp_path):
    table = tmp_path / "table"
    publish_run(table, curated_rows(300, seed=12), "20240101T000000Z-aaaa")
    publish_run(table, curated_rows(200, seed=13, first_id=1_600_000_000_000_000_000), "20240102T000000Z-bbbb")
    latest = validate_version(table, config=CONFIG)
    assert latest.success and latest.result_path.parent.name == "v1"
    stored = json.loads(latest.result_path.read_text())
    assert stored["parameters"]["output_records"] == 500  # both runs' rows are in version 1
    assert any("another config" in n for n in latest.notes)
    first = validate_version(table, 0, CONFIG)
    assert first.success and json.loads(first.result_path.read_text())["parameters"]["output_records"] == 300
    # a version whose stored report disagrees with its rows fails
    report_path = table / "_tweetmill" / "runs" / "20240101T000000Z-aaaa.json"
    report = json.loads(report_path.read_text())
    report["output_records"] = 299
    report_path.write_text(json.dumps(report))
    assert not validate_version(table, 0, CONFIG).success


def test_a_real_run_passes_its_gate(tmp_path):
    """pipeline.run with real stages, then the curated suite on what it published (with its stored report)."""
    from transforms import pipeline
    from transforms.config import load_config

    texts = ["Hello world, this is a lovely day in the park", "Bonjour tout le monde, il fait beau aujourd'hui",
             "Hello world, this is a lovely day in the park", "RT @bob: Hello world, this is a lovely day in the park",
             "Mail me at jane.doe@example.com or call +44 20 7946 0958 please", "hey @alice how are you today",
             "Guten Morgen, wie geht es dir heute?", "   "]
    records = [{"id": str(1000 + i), "text": t, "created_at": "2024-01-01T00:00:00.000Z", "author_id": "42"}
               for i, t in enumerate(texts)]
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    config = load_config(stages=["normalize", "dedupe_exact", "langid", "pii"],
                         settings={"pii": {"allow_dev_key": True}, "langid": {"languages": ["de", "en", "fr"]}})
    report = pipeline.run([str(tmp_path / "in.jsonl")], tmp_path / "table", config)
    assert report["output_records"] == 5
    result = validate_version(tmp_path / "table", config=config)
    assert result.success, result.summary_markdown()
    assert result.notes == [] and result.evaluated >= 25
    # Without a config, a version is checked with the one it was published with, not the defaults.
    again = validate_version(tmp_path / "table")
    assert again.success and again.notes == [] and again.evaluated == result.evaluated


# -- residual PII patterns (no GX) ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, kind",
    [
        ("write to jane.doe+x@mail.example.org", "email"),
        ("thanks @jane_doe!", "mention"),
        ("RT @user: fine", None),
        ("@user's take", None),
        ("x@user_y is no mention", None),
        ("card 4111 1111 1111 1111 ok", "card"),
        ("order 4111 1111 1111 1112", None),  # fails Luhn
        ("tweet 1456789012345678901", None),  # an id: issuer digit 1
        ("server at 192.168.10.25.", "ip"),
        ("version 1.2.3.4.5 and 300.1.1.1", None),
        ("v6 2001:db8::8a2e:370:7334 here", "ip"),
        ("at 10:30:45 today", None),
        ("call +44 20 7946 0958", "phone"),
        ("call (212) 555-0123", "phone"),
        ("in 2013 212 555 people", None),
        ("<EMAIL> <PHONE> <CARD> <IP> <IBAN> @user http", None),
    ],
)
def test_residual_pii_kinds(text, kind):
    assert residual_pii(pl.Series([text]), ["US"]).to_list() == [kind]


def test_residual_pii_regions_and_nulls():
    texts = pl.Series(["call (212) 555-0123", None])
    assert residual_pii(texts, ["US"]).to_list() == ["phone", None]
    assert residual_pii(texts, ["DE"]).to_list() == [None, None]  # North American formats only for US/CA


def test_luhn_vectorized():
    assert luhn_valid(["4111111111111111", "79927398713", "79927398710", "0"]).tolist() == [True, True, False, True]


def test_a_run_whose_ingested_rows_fail_the_raw_suite_publishes_nothing(tmp_path):
    """The raw suite guards the readers' contract: rows that break it (simulated here by rewriting the ingest step's
    part, our own seam) stop the run before any stage, naming the suite and the expectation."""
    from transforms.engines.staging import read_part, write_part
    from transforms.pipeline import Curation, GateFailed, run

    src = tmp_path / "in.parquet"
    pq.write_table(tweets([{"id": str(i), "text": f"tweet number {i}"} for i in range(1, 30)]), src)
    table = tmp_path / "table"
    config = PipelineConfig(stages=["normalize"])
    c = Curation([str(src)], table, config)
    c.ingest()
    rows = read_part(c.ingested.parts[0])
    broken = tmp_path / "broken.arrow"
    write_part(with_values(rows, "id", {3: "12e5"}), broken)
    c.ingested.parts[:] = [broken]
    with pytest.raises(GateFailed, match=r"raw suite.*expect_column_values_to_match_regex\(id\)") as failed:
        c.validate_input()
    assert failed.value.gate.failures[0]["example_ids"] == ["12e5"]
    assert json.loads(failed.value.gate.result_path.read_text())["success"] is False
    assert not (table / "_delta_log").exists()

    report = run([str(src)], tmp_path / "good", config)  # the same input, unbroken: checked and published
    assert report["input_validation"]["success"] and report["version"] == 0
