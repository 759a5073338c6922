"""The data-quality gate: runs the suites in expectations/suites/ with Great Expectations, in-process.

An ephemeral GX context (no GX Cloud, no project folder, analytics off), a pandas data source over the check frames
(expectations/frames.py), one validation per frame, and Data Docs built into the caller's folder. The pipeline calls
`validate_output` between writing the shards and committing them: a failed gate publishes nothing.

Failures carry the expectation, the column, the observed value and up to 5 example ids; the check frames hold no
tweet text, so neither the failures nor the result JSON nor the Data Docs can show one.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from expectations import frames, validation
from expectations.parameters import field_names, stages_run, suite_parameters
from expectations.suites import applicable, columns_used, load_suite
from expectations.tasks import BucketTask, Check, Runner, SliceTask
from expectations.validation import EXAMPLES, INDEX_COLUMNS
from transforms import publish
from transforms.config import PipelineConfig
from transforms.engines import make_engine
from transforms.engines.part_tasks import run_here
from transforms.schema import TWEET_SCHEMA
from transforms.versions import shard_uris

# Rows in one rows frame at most (~100 bytes a row there): a larger run is checked slice by slice, in the tasks of
# the run's engine (expectations/tasks.py), so the gate's memory does not grow with the run, nor its time on a
# cluster.
SLICE_ROWS = 4_000_000
ROW_WISE = {  # expectations whose verdict on all rows is the sum of their verdicts on slices of them
    "expect_column_values_to_not_be_null", "expect_column_values_to_be_null", "expect_column_values_to_match_regex",
    "expect_column_values_to_be_between", "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_in_set", "expect_column_pair_values_a_to_be_greater_than_b",
    "expect_column_pair_values_to_be_equal",
}
ROW_COUNT, UNIQUE = "expect_table_row_count_to_equal", "expect_column_values_to_be_unique"
RESULT_FILE = "validation.json"
DOCS_DIR = "data_docs"


@dataclass
class GateResult:
    suite: str
    success: bool
    failures: list[dict] = field(default_factory=list)
    evaluated: int = 0
    result_path: Path | None = None
    docs_path: Path | None = None
    notes: list[str] = field(default_factory=list)

    def summary_markdown(self) -> str:
        """A short table of the failures, for the CLI and a Prefect artifact."""
        status = "passed" if self.success else "FAILED"
        met = self.evaluated - len(self.failures)
        lines = [f"**{self.suite} suite {status}**: {met} of {self.evaluated} expectations met."]
        lines += [f"- {note}" for note in self.notes]
        if self.failures:
            lines += ["", "| expectation | frame | column | stage | observed | example ids |",
                      "|---|---|---|---|---|---|"]
            for f in self.failures:
                cells = [f["expectation"], f["batch"], f["column"] or "", f["stage"] or "", _short(f["observed"]),
                         ", ".join(f["example_ids"])]
                lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
        if self.docs_path is not None:
            lines += ["", f"Data Docs: {self.docs_path}"]
        return "\n".join(lines)


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate_output(shards: Sequence[Path], *, config: PipelineConfig, report: dict, out_dir: Path,
                    runner: Runner = run_here) -> GateResult:
    """Run the curated suite on a run's shards (before they are committed), against its report. `runner` runs a
    large run's slices (the engine's run_tasks; by default one after another here)."""
    return _validate_curated(list(shards), config, [report], out_dir, runner)


def validate_version(
    table: Path, version: int | None = None, config: PipelineConfig | None = None, *, out_dir: Path | None = None,
    runner: Runner | None = None,
) -> GateResult:
    """Re-run the curated suite on a published version: all of its rows, against the reports of the runs that wrote
    them (the stored report, else the commit's metadata), with `config`'s thresholds, by default those of the newest
    run that wrote the version (as its publish gate checked it). A large version's slices run in the workers of that
    config's engine unless `runner` says otherwise. Results go to TABLE/_tweetmill/validations/v<N>."""
    table = Path(table)
    version = publish.open_table(table, version).version()
    shards = [Path(u) for u in shard_uris(table, version)]
    commits = {v["run_id"]: v for v in publish.versions(table) if v.get("run_id")}
    reports, notes = [], []
    for run_id in sorted({s.parent.name for s in shards}):
        stored = publish.sidecar(table, "runs") / f"{run_id}.json"
        report = json.loads(stored.read_text()) if stored.exists() else commits.get(run_id)
        if report is None:
            raise publish.PublishError(f"version {version} holds shards of run {run_id}, which has no report or commit")
        reports.append(report)
    if config is None:
        stored = [r["config"] for r in reports if r.get("config")]  # runs published before 2026-12 stored none
        config = PipelineConfig(**stored[-1]) if stored else PipelineConfig()
    for report in reports:
        if report.get("config_hash") != config.fingerprint():
            notes.append(f"run {report['run_id']} ran with another config (hash {report.get('config_hash')}); "
                         "thresholds are this config's")
    out_dir = out_dir or publish.sidecar(table, "validations") / f"v{version}"
    if runner is None:
        runner = make_engine(config.engine, part_rows=config.part_rows, **config.engine_settings()).run_tasks
    result = _validate_curated(shards, config, reports, out_dir, runner)
    result.notes[:0] = notes
    return result


def validate_input(sources: Sequence[Path | pa.Table], *, out_dir: Path | None = None,
                   runner: Runner = run_here) -> GateResult:
    """Run the raw suite on ingested canonical rows (Arrow tables, or the ingest step's parts: an engine's runner
    needs paths)."""
    sources = list(sources)
    schema = frames.source_schema(sources[0]) if sources else TWEET_SCHEMA
    params = {"canonical_fields": field_names(TWEET_SCHEMA)}
    plan = applicable(load_suite("raw"), (), params)
    with tempfile.TemporaryDirectory(prefix="gate-", dir=_work_parent(out_dir)) as work:
        checks = {"schema": frames.schema_frame(schema)}
        return _run("raw", _passes("raw", plan, checks, sources, params, Path(work), runner), params, out_dir)


def _validate_curated(shards: list[Path], config: PipelineConfig, reports: list[dict], out_dir: Path,
                      runner: Runner) -> GateResult:
    params = suite_parameters(config, reports)
    plan = applicable(load_suite("curated"), stages_run(reports), params)
    checks = {"shards": frames.shards_frame(shards), "funnel": frames.funnel_frame(reports)}
    notes = []
    if shards:
        checks["schema"] = frames.schema_frame(pq.read_schema(shards[0]))
    else:
        notes.append("no shards: nothing published, schema not checked")
        plan.pop("schema", None)
    with tempfile.TemporaryDirectory(prefix="gate-", dir=_work_parent(out_dir)) as work:
        result = _run("curated", _passes("curated", plan, checks, shards, params, Path(work), runner), params,
                      out_dir)
    result.notes += notes
    return result


def _work_parent(out_dir: Path | None) -> Path | None:
    """Where a large run's hash buckets go for the gate's while: beside its results (on the table's storage)."""
    if out_dir is None:
        return None
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return Path(out_dir)


@dataclass
class Pass:
    """A batch's expectations (all, or one part of its checks: `part`) and a frame to check them on here, or the
    validation results of the tasks that checked them elsewhere (on slices or buckets of the rows)."""

    batch: str
    part: str
    expectations: list[dict]
    frame: pd.DataFrame | None = None
    results: list[dict] | None = None

    def name(self, suite: str) -> str:
        return f"{suite}.{self.batch}.{self.part}" if self.part else f"{suite}.{self.batch}"


def _passes(suite: str, plan: dict[str, list[dict]], checks: dict[str, pd.DataFrame], rows: Sequence,
            params: dict, work: Path, runner: Runner) -> list[Pass]:
    """The plan's batches with what they run on; the rows batch from `rows` (shards, parts or tables): one frame
    where the rows fit in SLICE_ROWS, else, in the runner's tasks, row-wise expectations slice by slice and each
    uniqueness in as many hash buckets of its column as there are slices; the row count on a frame that holds
    nothing."""
    passes: list[Pass] = []
    for batch, expectations in plan.items():
        if batch != "rows":
            passes.append(Pass(batch, "", expectations, checks[batch]))
            continue
        sizes = [frames.source_rows(source) for source in rows]  # one footer read per shard
        slices = frames.row_slices(rows, sizes, SLICE_ROWS)
        if len(slices) <= 1:
            columns = {c for e in expectations for c in columns_used(e)}
            passes.append(Pass(batch, "", expectations, frames.rows_frame(rows, columns, params)))
            continue
        unknown = sorted({e["type"] for e in expectations} - ROW_WISE - {ROW_COUNT, UNIQUE})
        if unknown:
            raise ValueError(f"the rows suite has expectations the gate cannot check in slices of rows: {unknown}")
        passes += _sliced(suite, expectations, slices, params, work, runner)
        counts = [e for e in expectations if e["type"] == ROW_COUNT]
        if counts:
            passes.append(Pass(batch, "row_count", counts, frames.count_frame(sum(sizes))))
    return passes


def _sliced(suite: str, expectations: list[dict], slices: list, params: dict, work: Path,
            runner: Runner) -> list[Pass]:
    """The row-wise and uniqueness passes of a large run, with the results of two rounds of the runner's tasks: a
    slice each (its row-wise checks, its unique columns spread over hash buckets), then a bucket each (the
    uniqueness checks)."""
    row_wise = Pass("rows", "", [e for e in expectations if e["type"] in ROW_WISE])
    passes: list[Pass] = [row_wise]
    unique: list[tuple[Pass, str, Check]] = []
    for e in expectations:
        if e["type"] == UNIQUE:
            column = e["kwargs"]["column"]
            passes.append(Pass("rows", f"unique_{column}", [e]))
            if frames.has_columns(slices[0], [column, "id"]):
                unique.append((passes[-1], column, Check(suite, passes[-1].name(suite), [e], params)))
            else:  # the expectation fails, naming the column
                passes[-1].frame = pd.DataFrame({"id": pd.Series([], dtype=object)})
    columns = frozenset(c for e in row_wise.expectations for c in columns_used(e))
    check = Check(suite, row_wise.name(suite), row_wise.expectations, params)
    spread = tuple(column for _, column, _ in unique)
    first = runner(len(slices), SliceTask(check, columns, slices, spread, str(work)), work)
    row_wise.results = [s["validation"] for s in first]
    if unique:
        second = runner(len(slices), BucketTask(tuple((c, ch) for _, c, ch in unique), str(work)), work)
        for p, column, _ in unique:
            p.results = [s["validations"][column] for s in second]
    return passes


def _run(suite: str, passes: list[Pass], params: dict, out_dir: Path | None) -> GateResult:
    docs_dir = Path(out_dir) / DOCS_DIR if out_dir is not None else None
    context = validation.context(docs_dir)
    results: dict[str, dict] = {}
    for p in passes:
        name = p.name(suite)
        definition = validation.definition(context, suite, name, p.expectations)
        if p.results is not None:
            result = _merged(p.results)
            _store(context, name, result)
        else:
            result = validation.validate(definition, p.batch, p.frame, params)
        if p.batch in results:
            result = _counted({**results[p.batch], "results": results[p.batch]["results"] + result["results"]})
        results[p.batch] = result
    failures = [_failure(batch, INDEX_COLUMNS[batch], r)
                for batch, result in results.items() for r in result["results"] if not r["success"]]
    evaluated = sum(len(result["results"]) for result in results.values())
    gate = GateResult(suite=suite, success=not failures, failures=failures, evaluated=evaluated)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        gate.result_path = out_dir / RESULT_FILE
        blob = {"suite": suite, "success": gate.success, "parameters": params, "failures": failures,
                "validations": results}
        gate.result_path.write_text(json.dumps(blob, indent=1, default=str))
        context.build_data_docs()
        gate.docs_path = docs_dir / "index.html"
    return gate


def _store(context, name: str, result: dict) -> None:
    """Data Docs show one page for a validation checked in tasks (slices, buckets): its merged result."""
    from great_expectations.core.expectation_validation_result import expectationSuiteValidationResultSchema
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    suite = ExpectationSuiteIdentifier(name=name)
    run = result.get("meta", {}).get("run_id") or {}
    key = ValidationResultIdentifier(expectation_suite_identifier=suite, batch_identifier=name.split(".", 1)[1],
                                     run_id=RunIdentifier(run_name=run.get("run_name"), run_time=run.get("run_time")))
    context.validation_results_store.store_validation_results(
        suite_validation_result=expectationSuiteValidationResultSchema.load(result),
        suite_validation_result_identifier=key, expectation_suite_identifier=suite)


COUNTS = ("element_count", "unexpected_count", "missing_count")


def _merged(runs: list[dict]) -> dict:
    """One validation's results on several frames (slices or buckets of the rows) as one: counts added up, the first
    examples kept, percentages over all rows."""
    if len(runs) == 1:
        return runs[0]
    merged = []
    for parts in zip(*(run["results"] for run in runs)):
        results = [p.get("result") or {} for p in parts]
        result = dict(results[0])
        for key in COUNTS:
            if key in result:
                result[key] = sum(r.get(key, 0) for r in results)
        for key in ("partial_unexpected_list", "partial_unexpected_index_list"):
            if key in result:
                result[key] = [x for r in results for x in r.get(key) or []][:EXAMPLES]
        if "partial_unexpected_counts" in result:
            counts: dict[str, int] = {}
            for r in results:
                for c in r.get("partial_unexpected_counts") or []:
                    value = json.dumps(c["value"], default=str)
                    counts[value] = counts.get(value, 0) + c["count"]
            top = sorted(counts.items(), key=lambda kv: -kv[1])[:EXAMPLES]
            result["partial_unexpected_counts"] = [{"value": json.loads(v), "count": n} for v, n in top]
        rows, missing = result.get("element_count", 0), result.get("missing_count", 0)
        if "unexpected_count" in result:
            unexpected = result["unexpected_count"]
            nonmissing = 100.0 * unexpected / (rows - missing) if rows > missing else 0.0
            result.update(unexpected_percent_total=100.0 * unexpected / rows if rows else 0.0,
                          unexpected_percent_nonmissing=nonmissing, unexpected_percent=nonmissing)
        if "missing_count" in result:
            result["missing_percent"] = 100.0 * missing / rows if rows else 0.0
        raised = [p for p in parts if (p.get("exception_info") or {}).get("raised_exception")]
        merged.append({**(raised or parts)[0], "success": all(p["success"] for p in parts), "result": result})
    return _counted({**runs[0], "results": merged})


def _counted(validation: dict) -> dict:
    """A validation result whose success and statistics are its expectations' results'."""
    results = validation["results"]
    met = sum(r["success"] for r in results)
    return {**validation, "success": met == len(results), "statistics": {
        "evaluated_expectations": len(results), "successful_expectations": met,
        "unsuccessful_expectations": len(results) - met, "success_percent": 100.0 * met / len(results)}}


def _error(info: dict) -> str | None:
    """The first line of the error an expectation raised (GX keys it by metric, or not at all), if any."""
    entries = [info] if "raised_exception" in info else [e for e in info.values() if isinstance(e, dict)]
    for entry in entries:
        if entry.get("raised_exception") or entry.get("exception_message"):
            return (str(entry.get("exception_message") or "").strip().splitlines() or ["unknown error"])[-1]
    return None


def _failure(batch: str, index: str, r: dict) -> dict:
    config, result = r["expectation_config"], r.get("result") or {}
    kwargs = config["kwargs"]
    columns = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
    error = _error(r.get("exception_info") or {})
    if error is not None:
        observed: Any = "error: " + error
    elif "partial_missing_list" in result:
        observed = {"missing": result["partial_missing_list"]}
    elif "observed_value" in result:
        observed = result["observed_value"]
    else:
        observed = {"unexpected": result.get("unexpected_count"), "examples": result.get("partial_unexpected_list", [])}
    ids = []
    for row in result.get("partial_unexpected_index_list") or []:
        if isinstance(row, dict) and row.get(index) is not None and str(row[index]) not in ids:
            ids.append(str(row[index]))
    return {
        "expectation": config["type"],
        "batch": batch,
        "column": ", ".join(columns) or None,
        "stage": config.get("meta", {}).get("stage"),
        "observed": observed,
        "unexpected_count": result.get("unexpected_count"),
        "example_ids": ids[:EXAMPLES],
    }
