"""The CLI as a user runs it: a subprocess, exit codes, one-line errors, the report file."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "tweetmill"
SERVER_ENV: dict = {}


@pytest.fixture(autouse=True)
def _use_prefect_server(prefect_server):
    """`tweetmill run` goes through the Prefect flow: point it at the session's server instead of a temporary one."""
    SERVER_ENV.update(prefect_server["env"])


def tweetmill(*args, cwd=None, timeout=300, **env_overrides):
    env = {**os.environ, **SERVER_ENV, "NO_COLOR": "1", "COLUMNS": "160", **env_overrides}
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def _jsonl(path, n):
    path.write_text("".join(json.dumps({"id": str(i + 1), "text": f"tweet number {i % (n - 2)}", "created_at": "2024-05-01T10:00:00Z"}) + "\n" for i in range(n)))
    return path


def test_run_report_and_versions(tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", 12)
    res = tweetmill("run", str(src), "--output", str(tmp_path / "t"), "--report", str(tmp_path / "r.json"))
    assert res.returncode == 0, res.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report) >= {"version", "input_records", "rejected", "output_records", "stages"}
    assert report["input_records"] == 12 and report["output_records"] == 10
    assert report["input_records"] == report["output_records"] + sum(s["dropped"] for s in report["stages"]) + report["rejected"]
    assert "published version 0" in res.stdout
    versions = tweetmill("versions", str(tmp_path / "t"), "--json")
    assert versions.returncode == 0
    assert json.loads(versions.stdout)[0]["output_records"] == 10
    again = tweetmill("run", str(src), "--output", str(tmp_path / "t"), "--report", str(tmp_path / "r.json"))
    assert again.returncode == 0, again.stderr
    table = tmp_path / "t"
    assert again.stdout.splitlines()[-1] == f"version 0 of {table} already holds this run: nothing new was published"
    assert len(json.loads(tweetmill("versions", str(tmp_path / "t"), "--json").stdout)) == 1


def test_missing_input_is_one_line_exit_2(tmp_path):
    res = tweetmill("run", str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "t"))
    assert res.returncode == 2
    assert "nope.jsonl" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_unreadable_or_invalid_config_is_one_line_exit_2(tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", 4)
    for body in ("stages: [normalize, no_such_stage]\n", "stages: [normalize\n", "max_reject_rate: 7\n"):
        cfg = tmp_path / "c.yaml"
        cfg.write_text(body)
        res = tweetmill("run", str(src), "--output", str(tmp_path / "t"), "--config", str(cfg))
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
    res = tweetmill("run", str(src), "--output", str(tmp_path / "t"), "--config", str(tmp_path / "missing.yaml"))
    assert res.returncode == 2 and "missing.yaml" in res.stderr


def test_a_missing_model_file_is_one_line_exit_2_before_any_work(tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", 4)
    for stage, key in (("toxicity", "model_path"), ("langid", "supplement_path"), ("langid", "model_path")):
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"stages: [normalize, {stage}]\nsettings:\n  {stage}: {{{key}: {tmp_path}/gone.ftz}}\n")
        res = tweetmill("run", str(src), "--output", str(tmp_path / "t"), "--config", str(cfg))
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert res.stderr.strip() == f"tweetmill: error: invalid config: {stage}: model file not found: {tmp_path}/gone.ftz"
        assert not (tmp_path / "t").exists()  # nothing was ingested


def test_a_missing_pii_key_is_one_line_exit_2_before_any_work(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("stages: [normalize, pii]\nsettings:\n  pii: {pseudonym_key_env: TWEETMILL_KEY_UNSET}\n")
    res = tweetmill("run", str(_jsonl(tmp_path / "in.jsonl", 4)), "--output", str(tmp_path / "t"), "--config", str(cfg))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "TWEETMILL_KEY_UNSET" in res.stderr and not (tmp_path / "t").exists()


def test_an_output_that_cannot_be_created_is_one_line_exit_2(tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", 4)
    (tmp_path / "a-file").write_text("")
    for command, output, message in (
        ("run", tmp_path / "a-file" / "t", f"cannot create the output folder {tmp_path}/a-file/t: Not a directory"),
        ("annotate", tmp_path / "a-file" / "out.parquet", f"the output folder {tmp_path}/a-file is a file"),
    ):
        res = tweetmill(command, str(src), "--output", str(output))
        assert res.returncode == 2 and res.stderr.strip() == f"tweetmill: error: {message}", res.stderr


def test_a_report_path_that_cannot_be_written_is_one_line_exit_2_before_any_work(tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", 4)
    (tmp_path / "a-file").write_text("")
    for report, reason in ((tmp_path / "a-file" / "r.json", f"{tmp_path}/a-file is a file"),
                           (tmp_path / "a-file" / "sub" / "r.json", "Not a directory"), (tmp_path, "it is a folder")):
        res = tweetmill("run", str(src), "--output", str(tmp_path / "t"), "--report", str(report))
        assert res.returncode == 2, res.stderr
        assert res.stderr.strip() == f"tweetmill: error: cannot write the report to {report}: {reason}"
        assert not (tmp_path / "t" / "_delta_log").exists()  # nothing was published
    res = tweetmill("run", str(src), "--output", str(tmp_path / "t"), "--report", str(tmp_path / "new" / "r.json"))
    assert res.returncode == 0 and json.loads((tmp_path / "new" / "r.json").read_text())["version"] == 0


def test_table_commands_on_a_missing_table_or_version_are_one_line_exit_2(tmp_path):
    table = tmp_path / "t"
    assert tweetmill("run", str(_jsonl(tmp_path / "in.jsonl", 4)), "--output", str(table)).returncode == 0
    for args, message in (
        (("validate", str(tmp_path / "nope")), f"no Delta table at {tmp_path}/nope"),
        (("versions", str(tmp_path / "nope")), f"no Delta table at {tmp_path}/nope"),
        (("vacuum", str(tmp_path / "nope"), "--keep", "1"), f"no Delta table at {tmp_path}/nope"),
        (("validate", str(table), "--version", "3"), f"{table} has versions 0 to 0; there is no version 3"),
        (("diff", str(table), "0", "1"), f"{table} has versions 0 to 0; there is no version 1"),
    ):
        res = tweetmill(*args)
        assert res.returncode == 2 and res.stderr.strip() == f"tweetmill: error: {message}", res.stderr
    res = tweetmill("vacuum", str(table), "--keep", "0")
    assert res.returncode == 2 and "at least 1" in res.stderr and "Traceback" not in res.stderr


def test_reading_a_vacuumed_version_is_one_line_exit_2_and_versions_marks_it(tmp_path):
    from tests.curated import curated_rows, publish_run

    table = tmp_path / "t"
    for run, mode in (("20240101T000000Z-r1", "append"), ("20240102T000000Z-r2", "overwrite"),
                      ("20240103T000000Z-r3", "append")):
        publish_run(table, curated_rows(10, seed=len(mode), first_id=int(run[:8]) * 100), run, mode=mode)
    assert tweetmill("vacuum", str(table), "--keep", "1", "--min-age-hours", "0").returncode == 0
    message = f"version 0 of {table} can no longer be read: vacuum removed its files (readable: versions 1 to 2)"
    for args in (("diff", str(table), "0", "2"), ("validate", str(table), "--version", "0")):
        res = tweetmill(*args)
        assert res.returncode == 2 and res.stderr.strip() == f"tweetmill: error: {message}", res.stderr
    res = tweetmill("versions", str(table), "--json")
    assert [(r["version"], r["vacuumed"]) for r in json.loads(res.stdout)] == [(2, False), (1, False), (0, True)]
    rows = tweetmill("versions", str(table)).stdout.splitlines()
    assert [line.split()[1] for line in rows if line.rstrip(" │").endswith("vacuumed")] == ["0"]


def test_an_unreachable_spark_master_is_one_line_exit_2(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = tweetmill("run", str(_jsonl(tmp_path / "in.jsonl", 4)), "--output", str(tmp_path / "t"), "--engine", "spark",
                    "--spark-master", f"spark://127.0.0.1:{port}")
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == (f"tweetmill: error: cannot reach the Spark master spark://127.0.0.1:{port} "
                                  f"(127.0.0.1:{port}: Connection refused)")
    res = tweetmill("run", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "t"), "--engine", "spark",
                    "--config", str(_yaml(tmp_path / "c.yaml", "engine_options: {memory: 4g}\n")))
    assert res.returncode == 2 and "engine_options.memory" in res.stderr, res.stderr


def test_a_prefect_api_that_does_not_answer_or_a_missing_landing_folder_is_one_line_exit_2(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/api"
    res = tweetmill("run", str(_jsonl(tmp_path / "in.jsonl", 4)), "--output", str(tmp_path / "t"), PREFECT_API_URL=url)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert f"the Prefect API at {url} (PREFECT_API_URL) does not answer" in res.stderr
    res = tweetmill("serve", "--landing", str(tmp_path / "nope"), "--table", str(tmp_path / "t"))
    assert res.returncode == 2 and res.stderr.strip() == f"tweetmill: error: landing folder not found: {tmp_path}/nope"


def test_serve_without_a_prefect_server_is_one_line_exit_2(tmp_path):
    """Prefect schedules nothing on the temporary server `run` falls back to: serve would poll forever, idle."""
    (tmp_path / "landing").mkdir()
    res = tweetmill("serve", "--landing", str(tmp_path / "landing"), "--table", str(tmp_path / "t"), "--interval", "1",
                    timeout=60, PREFECT_API_URL="")
    assert res.returncode == 2 and res.stderr.strip() == (
        "tweetmill: error: serve needs a Prefect server to schedule its runs: start one with "
        "infra/prefect/start-server.sh and set PREFECT_API_URL (source infra/prefect/env.sh)"), res.stderr
    assert "serving" not in res.stdout


def _yaml(path, body):
    path.write_text(body)
    return path


def test_reject_rate_exit_3_and_nothing_published(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"id": "1", "text": "fine"}\n{broken\n')
    res = tweetmill("run", str(src), "--output", str(tmp_path / "t"), "--max-reject-rate", "0.1")
    assert res.returncode == 3 and "nothing published" in res.stderr
    assert not (tmp_path / "t" / "_delta_log").exists()


def test_annotate_writes_parquet(tmp_path):
    import polars as pl

    src = _jsonl(tmp_path / "in.jsonl", 6)
    res = tweetmill("annotate", str(src), "--output", str(tmp_path / "a.parquet"), "--stages", "normalize,dedupe_exact")
    assert res.returncode == 0, res.stderr
    df = pl.read_parquet(tmp_path / "a.parquet")
    assert df.height == 6 and {"id", "text", "dup_of", "drop_reason"} <= set(df.columns)


def test_relative_table_path_runs_and_validates(tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", 8)
    res = tweetmill("run", str(src), "--output", "rel-table", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-1500:]
    res = tweetmill("validate", "rel-table", cwd=tmp_path)
    assert res.returncode == 0 and "passed" in res.stdout, res.stdout[-1500:]


def test_engine_flags_override_the_config(tmp_path):
    from flows.cli import _config, build_parser

    cfg = tmp_path / "c.yaml"
    cfg.write_text("engine_options: {executor_memory: 2g}\nstages: [normalize]\n")
    parse = build_parser().parse_args
    assert _config(parse(["run", "x", "-o", "t", "--config", str(cfg)])).engine == "polars"
    assert _config(parse(["run", "x", "-o", "t", "--engine", "spark"])).engine == "spark"
    spark = _config(parse(["annotate", "x", "-o", "a.parquet", "--config", str(cfg), "--spark-master", "local[2]"]))
    assert (spark.engine, spark.engine_options) == ("spark", {"executor_memory": "2g", "master": "local[2]"})
    assert spark.stages == ["normalize"]
    bad = tweetmill("run", "x", "-o", "t", "--engine", "flink")
    assert bad.returncode == 2 and "invalid choice: 'flink'" in bad.stderr


def test_an_append_with_other_columns_is_one_line_exit_2_before_any_work(tmp_path):
    src, table = _jsonl(tmp_path / "in.jsonl", 4), tmp_path / "t"
    assert tweetmill("run", str(src), "--output", str(table)).returncode == 0
    res = tweetmill("run", str(src), "--output", str(table), "--stages", "normalize")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert res.stderr.startswith(f"tweetmill: error: {table} holds other columns than these stages publish (only the "
                                 "table has id_dup_of, id_cluster_size, dedupe_hash, exact_dup_of, exact_cluster_size)")
