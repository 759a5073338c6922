"""The Prefect flows against a real Prefect server on 127.0.0.1: runs, artifacts, resume, schedule."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from transforms import publish
from transforms.config import PipelineConfig

BIN = Path(sys.executable).parent / "tweetmill"
pytestmark = pytest.mark.slow


def _env(server, **extra):
    return {**os.environ, **server["env"], "NO_COLOR": "1", **extra}


def _tweets(path: Path, n: int, offset: int = 0, distinct: int | None = None) -> Path:
    distinct = distinct or n
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": str(offset + i + 1), "text": f"tweet {offset + i % distinct} about things",
                                "created_at": "2024-05-01T10:00:00Z", "author_id": "7"}) + "\n")
    return path


async def _flow_run_details(url: str, table: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        runs = await client.read_flow_runs()
        run = [r for r in runs if r.state and r.state.is_completed() and r.parameters.get("table") == table][0]
        tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["tweetmill-funnel"])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])),
        )
        return run, tasks, artifacts


def test_cli_run_goes_through_the_flow_with_artifacts(tmp_path, prefect_server):
    src = _tweets(tmp_path / "in.jsonl", 50, distinct=40)
    res = subprocess.run([str(BIN), "run", str(src), "--output", str(tmp_path / "t"), "--report", str(tmp_path / "r.json")],
                         env=_env(prefect_server), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    os.environ["PREFECT_API_URL"] = prefect_server["url"]
    try:
        run, tasks, artifacts = asyncio.run(_flow_run_details(prefect_server["url"], str(tmp_path / "t")))
    finally:
        os.environ.pop("PREFECT_API_URL")
    assert run.state.is_completed()
    names = sorted(t.name for t in tasks)
    assert names == ["ingest", "publish", "stage-dedupe_exact", "stage-dedupe_id", "stage-normalize", "validate",
                     "validate-input", "write-shards"]
    assert all(t.state.is_completed() for t in tasks)
    assert len(artifacts) == 1
    md = artifacts[0].data
    for stage in report["stages"]:
        assert f"| {stage['name']} | {stage['input']:,} | {stage['output']:,} | {stage['dropped']:,} |" in md
    assert f"version **{report['version']}**" in md
    assert "tweet 1 about" not in md  # counts only, never content


def _cache_markers(table: Path) -> int:
    return len(list((table / "_tweetmill" / "cache").glob("*/_SUCCESS.json")))


def test_killed_run_resumes_without_recomputing(tmp_path, prefect_server):
    src = _tweets(tmp_path / "in.jsonl", 400_000, distinct=300_000)
    table = tmp_path / "t"
    cmd = [str(BIN), "run", str(src), "--output", str(table), "--stages", "normalize,dedupe_exact",
           "--report", str(tmp_path / "r.json")]
    proc = subprocess.Popen(cmd, env=_env(prefect_server), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while _cache_markers(table) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed: make the input larger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = _cache_markers(table)
    assert finished >= 2 and not (table / "_delta_log").exists()
    res = subprocess.run(cmd, env=_env(prefect_server), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["stages"][0]["reused"] is True  # normalize finished before the kill: not recomputed
    reference = tmp_path / "ref"
    subprocess.run([str(BIN), "run", str(src), "--output", str(reference), "--stages", "normalize,dedupe_exact"],
                   env=_env(prefect_server), check=True, capture_output=True, timeout=600)
    a = pl.read_delta(str(table)).drop("source_file").sort("id")
    b = pl.read_delta(str(reference)).drop("source_file").sort("id")
    assert a.equals(b) and a.height == 300_000


def test_served_deployment_appends_new_landing_files(tmp_path, prefect_server):
    landing, table = tmp_path / "landing", tmp_path / "t"
    landing.mkdir()
    log = open(tmp_path / "serve.log", "w")
    serve = subprocess.Popen(
        [str(BIN), "serve", "--landing", str(landing), "--table", str(table), "--interval", "3"],
        env=_env(prefect_server), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )

    def rows() -> int:
        return pl.read_delta(str(table)).height if (table / "_delta_log").exists() else 0

    def wait_for(n: int) -> None:
        deadline = time.time() + 300
        while rows() < n and time.time() < deadline and serve.poll() is None:
            time.sleep(1)
        tail = (tmp_path / "serve.log").read_text(errors="replace")[-3000:]  # synthetic tweets only
        assert rows() == n, f"the served deployment did not publish {n} rows; its log ends:\n{tail}"

    try:
        _tweets(landing / "drop-1.jsonl", 20)
        wait_for(20)
        _tweets(landing / "drop-2.jsonl", 10, offset=1000)
        wait_for(30)
        assert len(publish.versions(table)) == 2
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=60)
        log.close()


async def _deployment(name: str):
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return await client.read_deployment_by_name(name)


def test_prefect_yaml_deploys_and_runs_one_landing_run_at_a_time(prefect_server, monkeypatch):
    """`prefect deploy --all` from the repo, as the README says: the hourly landing deployment queues a run that
    falls due while the previous one is still going (overlapping appends would not dedupe against each other)."""
    repo = Path(__file__).resolve().parents[1]
    env = _env(prefect_server, TWEETMILL_ROOT=str(repo))
    prefect = [str(Path(sys.executable).parent / "prefect")]
    subprocess.run([*prefect, "work-pool", "create", "tweetmill-process", "--type", "process"], env=env,
                   capture_output=True, timeout=120)  # may exist already: the deploy below is what must succeed
    deployed = subprocess.run([*prefect, "--no-prompt", "deploy", "--all"], env=env, cwd=repo, capture_output=True,
                              text=True, timeout=300)
    assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]
    for name, value in prefect_server["env"].items():
        monkeypatch.setenv(name, value)
    landing = asyncio.run(_deployment("curate-landing/landing-hourly"))
    assert landing.global_concurrency_limit.limit == 1
    assert landing.concurrency_options.collision_strategy.value == "ENQUEUE"
    assert landing.schedules[0].schedule.cron == "7 * * * *"
    assert landing.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(repo)}}]
    scheduled = PipelineConfig(**landing.parameters["config"])  # what feeds training scrubs PII
    assert scheduled.stages[-1] == "pii" and len(scheduled.stages) == 7 and scheduled.max_reject_rate == 0.02
    adhoc = asyncio.run(_deployment("curate/curate-adhoc"))
    assert adhoc.global_concurrency_limit is None  # ad-hoc runs name their own inputs and tables


FLOW_WITHOUT_KEY = """
import sys
from flows.curate import curate
from transforms.config import load_config

config = load_config(stages=["normalize", "pii"], settings={"pii": {"pseudonym_key_env": "TWEETMILL_KEY_UNSET"}})
state = curate([sys.argv[1]], sys.argv[2], config, return_state=True)
print(state.type.value, state.message)
"""


def test_a_run_without_its_pii_key_fails_before_any_work_with_the_reason(tmp_path, prefect_server):
    """A deployment's run whose worker lacks the key: Failed with the reason, no traceback, nothing ingested."""
    src, table = _tweets(tmp_path / "in.jsonl", 5), tmp_path / "t"
    res = subprocess.run([sys.executable, "-c", FLOW_WITHOUT_KEY, str(src), str(table)], env=_env(prefect_server),
                         capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1].startswith("FAILED pii stage needs a pseudonymisation key")
    assert "TWEETMILL_KEY_UNSET" in res.stdout and "Traceback" not in res.stderr
    assert not table.exists()


LANDING_RUN = """
import sys
from flows.curate import curate_landing
from transforms.config import load_config

state = curate_landing(sys.argv[1], sys.argv[2], load_config(max_reject_rate=0.05), return_state=True)
print(state.type.value, state.message)
"""


def test_a_landing_file_of_mostly_bad_records_is_set_aside_and_the_others_are_published(tmp_path, prefect_server):
    """One bad file must not hold back every later landing run: it is quarantined, the rest goes on."""
    landing, table = tmp_path / "landing", tmp_path / "t"
    landing.mkdir()
    _tweets(landing / "good.jsonl", 30)
    (landing / "bad.jsonl").write_text("".join(f"{{not json {i}\n" for i in range(10)))
    run = [sys.executable, "-c", LANDING_RUN, str(landing), str(table)]
    first = subprocess.run(run, env=_env(prefect_server), capture_output=True, text=True, timeout=300,
                           cwd=Path(__file__).resolve().parents[1])
    assert first.returncode == 0 and first.stdout.strip().splitlines()[-1].startswith("COMPLETED"), first.stderr[-3000:]
    assert pl.read_delta(str(table)).height == 30
    state = json.loads((table / "_tweetmill" / "landing.json").read_text())
    outcome = {key.split("|")[0]: value for key, value in state.items()}
    assert outcome[str(landing / "good.jsonl")] == 0
    assert outcome[str(landing / "bad.jsonl")].startswith("quarantined: 10 of 40 input records rejected (25.0%)")
    assert f"most in {landing / 'bad.jsonl'} (10 of 10)" in outcome[str(landing / "bad.jsonl")]
    again = subprocess.run(run, env=_env(prefect_server), capture_output=True, text=True, timeout=300,
                           cwd=Path(__file__).resolve().parents[1])
    assert again.returncode == 0 and again.stdout.strip().splitlines()[-1].startswith("COMPLETED"), again.stderr[-3000:]
    assert len(publish.versions(table)) == 1  # nothing new: the bad file is not taken again
