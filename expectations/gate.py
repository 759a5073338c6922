"""The data-quality gate: runs the suites in expectations/suites/ with Great Expectations, in-process.

An ephemeral GX context (no GX Cloud, no project folder, analytics off), a pandas data source over the check frames
(expectations/frames.py), one validation per frame, and Data Docs built into the caller's folder. The pipeline calls
`validate_output` between writing the shards and committing them: a failed gate publishes nothing.

Failures carry the expectation, the column, the observed value and up to 5 example ids; the check frames hold no
tweet text, so neither the failures nor the result JSON nor the Data Docs can show one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from expectations import frames
from expectations.parameters import field_names, stages_run, suite_parameters
from expectations.suites import applicable, columns_used, load_suite
from transforms import publish
from transforms.config import PipelineConfig
from transforms.schema import TWEET_SCHEMA
from transforms.versions import shard_uris

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

EXAMPLES = 5
RESULT_FILE = "validation.json"
DOCS_DIR = "data_docs"
# The column that names a row of each check frame in failures (ids for tweets, never their text).
INDEX_COLUMNS = {"rows": "id", "schema": "name", "shards": "shard", "funnel": "step"}


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


def validate_output(shards: Sequence[Path], *, config: PipelineConfig, report: dict, out_dir: Path) -> GateResult:
    """Run the curated suite on a run's shards (before they are committed), against its report."""
    return _validate_curated(list(shards), config, [report], out_dir)


def validate_version(
    table: Path, version: int | None = None, config: PipelineConfig | None = None, *, out_dir: Path | None = None
) -> GateResult:
    """Re-run the curated suite on a published version: all of its rows, against the reports of the runs that wrote
    them (the stored report, else the commit's metadata), with `config`'s thresholds, by default those of the newest
    run that wrote the version (as its publish gate checked it). Results go to TABLE/_tweetmill/validations/v<N>."""
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
    result = _validate_curated(shards, config, reports, out_dir)
    result.notes[:0] = notes
    return result


def validate_input(sources: Sequence[Path | pa.Table], *, out_dir: Path | None = None) -> GateResult:
    """Run the raw suite on ingested canonical rows (Arrow tables or the ingest step's Parquet parts)."""
    sources = list(sources)
    if sources and isinstance(sources[0], pa.Table):
        schema = sources[0].schema
    else:
        schema = pq.read_schema(sources[0]) if sources else TWEET_SCHEMA
    params = {"canonical_fields": field_names(TWEET_SCHEMA)}
    plan = applicable(load_suite("raw"), (), params)
    columns = {c for e in plan.get("rows", []) for c in columns_used(e)}
    checks = {"schema": frames.schema_frame(schema), "rows": frames.rows_frame(sources, columns, params)}
    return _run("raw", plan, checks, params, out_dir)


def _validate_curated(shards: list[Path], config: PipelineConfig, reports: list[dict], out_dir: Path) -> GateResult:
    params = suite_parameters(config, reports)
    plan = applicable(load_suite("curated"), stages_run(reports), params)
    columns = {c for e in plan.get("rows", []) for c in columns_used(e)}
    checks = {
        "rows": frames.rows_frame(shards, columns, params),
        "shards": frames.shards_frame(shards),
        "funnel": frames.funnel_frame(reports),
    }
    notes = []
    if shards:
        checks["schema"] = frames.schema_frame(pq.read_schema(shards[0]))
    else:
        notes.append("no shards: nothing published, schema not checked")
        plan.pop("schema", None)
    result = _run("curated", plan, checks, params, out_dir)
    result.notes += notes
    return result


def _context(docs_dir: Path | None):
    """An in-memory GX context: no project folder, no analytics, no progress bars, and Data Docs (if wanted) only
    in `docs_dir`."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    sites = {}
    if docs_dir is not None:
        sites["gate"] = {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(Path(docs_dir).absolute())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites=sites,
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _run(suite: str, plan: dict[str, list[dict]], checks: dict, params: dict, out_dir: Path | None) -> GateResult:
    import great_expectations as gx
    from great_expectations.core.expectation_suite import ExpectationSuite

    docs_dir = Path(out_dir) / DOCS_DIR if out_dir is not None else None
    context = _context(docs_dir)
    source = context.data_sources.add_pandas("tweetmill")
    results, failures, evaluated = {}, [], 0
    for batch, expectations in plan.items():
        gx_suite = ExpectationSuite(name=f"{suite}.{batch}", expectations=expectations)
        if len(gx_suite.expectations) != len(expectations):
            raise ValueError(f"suite {suite}.{batch}: GX rejected some expectations (see its log)")
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(
                name=f"{suite}.{batch}",
                data=source.add_dataframe_asset(batch).add_batch_definition_whole_dataframe(batch),
                suite=context.suites.add(gx_suite),
            )
        )
        index = INDEX_COLUMNS[batch]
        result = definition.run(
            batch_parameters={"dataframe": checks[batch]},
            expectation_parameters=params,
            result_format={
                "result_format": "SUMMARY",
                "partial_unexpected_count": EXAMPLES,
                "unexpected_index_column_names": [index] if index in checks[batch].columns else [],
            },
        ).to_json_dict()
        results[batch] = result
        evaluated += len(result["results"])
        failures += [_failure(batch, index, r) for r in result["results"] if not r["success"]]
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
