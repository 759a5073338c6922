"""One run, engine-neutral: ingest -> stages -> shards -> publish, with counts that always reconcile.

`run` publishes a new table version; `annotate` runs the same stages but drops nothing and writes one row per input
record with every stage's columns. The Prefect flow (flows/curate.py) calls the same steps.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import transforms
from transforms import publish
from transforms.config import PipelineConfig
from transforms.engines.polars import ORIGINAL_TEXT, IngestResult, PolarsEngine, StepResult
from transforms.readers import ReaderOptions, expand_inputs, fingerprint
from transforms.stages.base import DedupeStage, Stage


class RejectRateExceeded(RuntimeError):
    """Too many input records could not be parsed: nothing is published."""


@functools.cache
def code_version() -> str:
    root = Path(transforms.__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{transforms.__version__}+{sha}" if sha else transforms.__version__


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


@dataclass
class StageOutcome:
    name: str
    result: StepResult

    def summary(self) -> dict:
        r = self.result
        return {
            "name": self.name,
            "input": r.rows_in,
            "output": r.rows_out,
            "dropped": r.rows_in - r.rows_out,
            "reasons": dict(sorted(r.drop_reasons.items())),
        }


def internal_columns(stages: Sequence[Stage]) -> set[str]:
    return {ORIGINAL_TEXT} | {c for s in stages for c in s.internal}


def _make_engine(config: PipelineConfig, progress: Callable[[int], None] | None) -> PolarsEngine:
    return PolarsEngine(part_rows=config.part_rows, progress=progress)


def _reader_options(config: PipelineConfig) -> ReaderOptions:
    return ReaderOptions(format=config.readers.format, csv_columns=dict(config.readers.csv_columns))


def _run_stages(engine, stages, ingest: IngestResult, work: Path, annotate_only: bool) -> list[StageOutcome]:
    parts, outcomes = ingest.parts, []
    for i, stage in enumerate(stages):
        result = engine.run_stage(stage, parts, work / f"{i + 1:02d}-{stage.name}", annotate_only)
        outcomes.append(StageOutcome(stage.name, result))
        parts = result.parts
    return outcomes


def _check_rejects(ingest: IngestResult, config: PipelineConfig) -> None:
    rate = ingest.rejected / ingest.records if ingest.records else 0.0
    if rate > config.max_reject_rate:
        raise RejectRateExceeded(
            f"{ingest.rejected} of {ingest.records} input records rejected ({rate:.1%}), above --max-reject-rate "
            f"{config.max_reject_rate:.1%}; nothing published"
        )


def run(
    inputs: Sequence[str],
    table: str | Path,
    config: PipelineConfig,
    *,
    mode: Literal["append", "overwrite"] = "append",
    progress: Callable[[int], None] | None = None,
    run_id: str | None = None,
) -> dict:
    """Curate `inputs` into a new version of the Delta table at `table`; returns the run report."""
    table = Path(table)
    run_id = run_id or new_run_id()
    files = expand_inputs(inputs)
    stages = config.build_stages()
    engine = _make_engine(config, progress)
    work = publish.sidecar(table, "staging") / run_id
    ingest = engine.ingest(files, _reader_options(config), work / "00-ingest", keep_original=False)
    _check_rejects(ingest, config)
    outcomes = _run_stages(engine, stages, ingest, work, annotate_only=False)
    final_parts = outcomes[-1].result.parts if outcomes else ingest.parts
    hidden = internal_columns(stages)
    shards = engine.write_shards(
        final_parts,
        publish.data_dir(table, run_id),
        name=lambda i: f"part-{i:05d}.zstd.parquet",
        columns=lambda schema: [n for n in schema.names if n not in hidden],
        max_rows=config.output.shard_max_rows,
        max_bytes=config.output.shard_max_bytes,
        row_group_rows=config.output.row_group_rows,
    )
    schema = pq.read_schema(shards[0]) if shards else _empty_schema(final_parts, hidden)
    output_records = outcomes[-1].result.rows_out if outcomes else ingest.records - ingest.rejected
    report = {
        "run_id": run_id,
        "table": str(table),
        "mode": mode,
        "input_records": ingest.records,
        "rejected": ingest.rejected,
        "output_records": output_records,
        "stages": [o.summary() for o in outcomes],
        "config_hash": config.fingerprint(),
        "code_version": code_version(),
        "engine": engine.name,
        "inputs": [{"path": f, "fingerprint": fingerprint(f)} for f in files],
        "shards": len(shards),
    }
    # Logs first, then the data commit: the data commit is the publish point, and its logs are already there.
    publish.append_log(table, "rejects", pq.read_table(ingest.rejects), run_id)
    drop_logs = [pq.read_table(o.result.drops) for o in outcomes if o.result.drops is not None]
    if drop_logs:
        publish.append_log(table, "drops", pa.concat_tables(drop_logs), run_id)
    meta = {k: report[k] for k in ("run_id", "config_hash", "code_version", "input_records", "rejected", "output_records")}
    meta["inputs"] = report["inputs"]
    meta["stages"] = report["stages"]
    report["version"] = publish.commit_shards(table, shards, schema, meta, mode=mode)
    publish.write_report(table, run_id, report)
    shutil.rmtree(work, ignore_errors=True)
    return report


def _empty_schema(parts: Sequence[Path], hidden: set[str]) -> pa.Schema:
    schema = pq.read_schema(parts[0])
    return pa.schema([f for f in schema if f.name not in hidden])


def annotate(
    inputs: Sequence[str],
    output: str | Path,
    config: PipelineConfig,
    *,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Run the stages without dropping anything; write one row per parsed input record to `output` (Parquet)."""
    files = expand_inputs(inputs)
    stages = config.build_stages()
    engine = _make_engine(config, progress)
    with tempfile.TemporaryDirectory(prefix="tweetmill-annotate-") as tmp:
        work = Path(tmp)
        ingest = engine.ingest(files, _reader_options(config), work / "00-ingest", keep_original=True)
        outcomes = _run_stages(engine, stages, ingest, work, annotate_only=True)
        parts = outcomes[-1].result.parts if outcomes else ingest.parts
        dup_columns = [s.dup_of_column for s in stages if isinstance(s, DedupeStage)]
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        writer = None
        for part in parts:
            t = _annotate_columns(pq.read_table(part), dup_columns)
            if writer is None:
                writer = pq.ParquetWriter(str(output), t.schema, compression="zstd")
            writer.write_table(t)
        if writer is not None:
            writer.close()
    return {
        "input_records": ingest.records,
        "rejected": ingest.rejected,
        "output_records": ingest.records - ingest.rejected,
        "stages": [o.summary() for o in outcomes],
    }


def _annotate_columns(t: pa.Table, dup_columns: list[str]) -> pa.Table:
    """id, the original text, the text as `run` would publish it, every stage column, dup_of and drop_reason."""
    cols = {"id": t.column("id"), "text": t.column(ORIGINAL_TEXT), "text_out": t.column("text")}
    for name in t.column_names:
        if name not in cols and name not in (ORIGINAL_TEXT, "drop_reason"):
            cols[name] = t.column(name)
    dup_of = pc.coalesce(*[t.column(c) for c in dup_columns]) if dup_columns else pa.nulls(t.num_rows, pa.string())
    cols["dup_of"] = dup_of
    cols["drop_reason"] = t.column("drop_reason") if "drop_reason" in t.column_names else pa.nulls(t.num_rows, pa.string())
    return pa.table(cols)
