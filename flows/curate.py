"""The Prefect flows. `curate` reads like the pipeline diagram: ingest, input check, each stage, shards, gate, publish.

Each step is a task with retries for transient failures (I/O, a lost worker) and none for a bad configuration or
bad data. Finished steps are kept by the pipeline itself (transforms/steps.py), so a rerun after a crash skips them.
`curate_landing` is what the scheduled deployment runs: it picks up new files from a landing folder and appends them.
"""


import contextlib
import os
from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.states import Failed

from transforms.config import ConfigError, PipelineConfig
from transforms.landing import Landing
from transforms.pipeline import Curation, EmptyOverwrite, GateFailed, RejectRateExceeded
from transforms.publish import PublishError
from transforms.readers import InputError
from transforms.stages.base import SetupError

PERMANENT = (ConfigError, InputError, RejectRateExceeded, GateFailed, PublishError, ValueError, TypeError)


def _transient(task, task_run, state) -> bool:
    """Retry only failures that another try can fix: never bad configuration, bad input or a failed gate."""
    try:
        state.result()
    except PERMANENT:
        return False
    except Exception:
        return True
    return False


step = task(retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=_transient, cache_policy=NO_CACHE)


@step(name="ingest", task_run_name="ingest")
def ingest(c: Curation) -> dict:
    result = c.ingest()
    get_run_logger().info("read %d records from %d input file(s), %d rejected", result.records, len(c.files), result.rejected)
    return {"records": result.records, "rejected": result.rejected}


@step(name="stage", task_run_name="stage-{name}")
def run_stage(c: Curation, index: int, name: str) -> dict:
    summary = c.run_stage(index)
    verb = "reused" if summary["reused"] else "ran"
    get_run_logger().info("%s %s: %d in, %d out", verb, name, summary["input"], summary["output"])
    return {k: v for k, v in summary.items() if k != "drops"}


def _verdict(check, key: str, description: str):
    """A data-quality suite's verdict, pass or fail, with its summary as an artifact (the flow decides what follows)."""
    try:
        gate = check()
    except GateFailed as e:
        gate = e.gate
    create_markdown_artifact(gate.summary_markdown(), key=key, description=description)
    return gate


@task(name="validate-input", task_run_name="validate-input", cache_policy=NO_CACHE)  # a verdict: no retry
def validate_input(c: Curation):
    return _verdict(c.validate_input, "tweetmill-input-gate", "raw input suite")


@step(name="write-shards", task_run_name="write-shards")
def write_shards(c: Curation) -> int:
    return len(c.write_shards())


@task(name="validate", task_run_name="validate", cache_policy=NO_CACHE)  # a verdict on the data: retrying cannot change it
def validate(c: Curation):
    return _verdict(c.validate, "tweetmill-quality-gate", "data-quality suite")


@step(name="publish", task_run_name="publish")
def publish(c: Curation) -> dict:
    report = c.publish()
    get_run_logger().info("published version %s with %d rows", report["version"], report["output_records"])
    return report


def funnel_markdown(report: dict) -> str:
    """The run as a table: records in/out/dropped per stage with reasons. Counts only, never tweet content."""
    lines = [
        f"### tweetmill run `{report['run_id']}`: version {report.get('version')}",
        "",
        "| step | in | out | dropped | reasons |",
        "|---|---:|---:|---:|---|",
        f"| read | {report['input_records']:,} | {report['input_records'] - report['rejected']:,} | "
        f"{report['rejected']:,} | rejected (parse errors, see `_tweetmill/rejects`) |",
    ]
    for s in report["stages"]:
        reasons = ", ".join(f"{k}: {v:,}" for k, v in s["reasons"].items()) or "-"
        reused = " (reused)" if s.get("reused") else ""
        lines.append(f"| {s['name']}{reused} | {s['input']:,} | {s['output']:,} | {s['dropped']:,} | {reasons} |")
    lines += ["", f"Published **{report['output_records']:,}** rows as version **{report.get('version')}** of "
              f"`{report['table']}`; rejected records: **{report['rejected']:,}**."]
    if "input_validation" in report:
        lines.append(f"Input check (raw suite): {'passed' if report['input_validation']['success'] else 'FAILED'}; "
                     f"Data Docs: `{report['input_validation']['docs']}`.")
    if "validation" in report:
        lines.append(f"Quality gate: {'passed' if report['validation']['success'] else 'FAILED'}; "
                     f"Data Docs: `{report['validation']['docs']}`; data card: `{report.get('data_card')}`.")
    return "\n".join(lines)


@flow(name="curate", log_prints=False)
def curate(
    inputs: list[str],
    table: str,
    config: PipelineConfig = PipelineConfig(),
    mode: Literal["append", "overwrite"] = "append",
) -> dict:
    try:
        c = Curation(inputs, table, config, mode=mode)
    except (SetupError, ConfigError) as e:  # e.g. no PII key, no Spark master: say so before any work, no traceback
        return Failed(message=str(e))
    ingest(c)
    try:
        c.check_rejects()
    except RejectRateExceeded as e:  # a verdict on the data, not a crash: fail the run with the reason, no traceback
        return Failed(message=str(e), data=e)
    raw = validate_input(c)
    if not raw.success:
        return Failed(message=str(GateFailed(raw)))
    for i, stage in enumerate(c.stages):
        run_stage(c, i, stage.name)
    write_shards(c)
    gate = validate(c)
    if not gate.success:
        return Failed(message=str(GateFailed(gate)))
    try:
        c.check_overwrite()
    except EmptyOverwrite as e:
        return Failed(message=str(e))
    report = publish(c)
    create_markdown_artifact(funnel_markdown(report), key="tweetmill-funnel", description="records per stage")
    return report


def curate_here(inputs: list[str], table: str, config: PipelineConfig = PipelineConfig(),
                mode: Literal["append", "overwrite"] = "append", **options):
    """Run `curate` in this process, as `tweetmill run` does. Without flow-run heartbeats unless the user set
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY: they exist so that an automation can mark a deployment's run Crashed when its
    worker dies (scheduled runs keep them), while here the user watches the process, and Prefect 3.9 waits up to a
    second at the end of every run for the heartbeat thread to notice it should stop."""
    keep = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY" in os.environ
    settings = contextlib.nullcontext() if keep else temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
    with settings:
        return curate(inputs, table, config, mode=mode, **options)


@flow(name="curate-landing")
def curate_landing(landing: str, table: str, config: PipelineConfig = PipelineConfig()):
    """Append the files that arrived in `landing` since the last run; mark them done once published. A file whose
    own share of unreadable records is above the limit is set aside (until its content changes), and the run goes
    on with the others: one bad file must not hold back every later run."""
    spot = Landing(Path(landing), Path(table))
    new = spot.pending()
    if not new:
        get_run_logger().info("no new files in the landing folder")
        return None
    state = curate([str(p) for p in new], table, config, mode="append", return_state=True)
    failure = state.result(raise_on_failure=False) if state.is_failed() else None
    if isinstance(failure, RejectRateExceeded) and failure.files:
        bad = set(failure.files)
        spot.quarantine([p for p in new if str(p) in bad], str(failure))
        get_run_logger().warning("set aside %d file(s) with too many unreadable records: %s", len(bad),
                                 ", ".join(sorted(bad)))
        new = [p for p in new if str(p) not in bad]
        if not new:
            return state
        state = curate([str(p) for p in new], table, config, mode="append", return_state=True)
    if state.is_failed():
        return state
    report = state.result()
    spot.mark_done(new, report["version"])
    return report
