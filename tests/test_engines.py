"""Every distributed engine (Spark, Beam) gives what the polars engine gives: the same rows, counts and logs, stage
by stage and end to end; Spark on a real standalone cluster too, Beam in worker processes too.

Input: a small demo corpus (transforms/demo.py: seven files in six formats, with rejects, retweets, exact and near
duplicates, PII). Comparisons report column names and counts only, never values.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests import probe
from tests.curated import dirty_run, forbid_slices_here, verdicts
from tests.helpers import small_toxicity_transformer, synthetic_toxic_tweets, tweets, write_parts
from transforms import demo, pipeline, publish
from transforms.config import load_config
from transforms.engines import make_engine, spark_session
from transforms.engines.polars import PolarsEngine
from transforms.engines.staging import read_part
from transforms.readers import ReaderOptions, expand_inputs
from transforms.readers.pieces import plan_pieces
from transforms.engines.part_tasks import BatchTask
from transforms.stages import CATALOGUE, stage_class
from transforms.stages.base import SetupError
from transforms.stages.dedupe_semantic import DedupeSemantic
from transforms.stages.normalize import Normalize
from transforms.stages.toxicity import Toxicity, ToxicityConfig
from transforms.steps import MARKER

REPO = Path(__file__).resolve().parents[1]
PART_ROWS = 700  # several parts per step, so part order and per-part work are exercised
PIECE_BYTES = 64 << 10  # Spark and Beam read the corpus's largest JSON-lines file (~320 KB) in 5 byte ranges
SPARK_LOCAL = {"master": "local[2]", "shuffle_partitions": 4}
# Beam in the caller's process (fast), with three shuffle partitions: several rank ranges and key partitions.
BEAM_LOCAL = {"running_mode": "in_memory", "partitions": 3}
PII_KEY = "engine-test-key-0123456789"


def _available(name: str) -> bool:
    """A stage runs here when its module imports and its model files exist (others are still being built)."""
    try:
        cls = stage_class(name)
        return all(Path(m).is_file() for m in cls().resources.model_files)
    except Exception:
        return False


STAGES = [name for name in CATALOGUE if _available(name)]


def _differences(a: pa.Table, b: pa.Table) -> list[str]:
    """What differs between two tables, as names and counts (the corpus holds real tweets: no values)."""
    if a.num_rows != b.num_rows:
        return [f"rows: {a.num_rows} != {b.num_rows}"]
    if a.column_names != b.column_names:
        return [f"columns: {a.column_names} != {b.column_names}"]
    diffs = [f"type of {f.name}" for f, g in zip(a.schema, b.schema) if (f.type, f.nullable) != (g.type, g.nullable)]
    return diffs + [name for name in a.column_names if not a.column(name).equals(b.column(name))]


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([(name, "ascending") for name in table.column_names])


def _read_folder_or_file(path) -> pa.Table:
    return pq.read_table(path).replace_schema_metadata(None)


def _parts(paths) -> pa.Table:
    return pa.concat_tables([read_part(p).replace_schema_metadata(None) for p in paths])


def _shards(table: Path) -> pa.Table:
    return pa.concat_tables(
        [pq.read_table(p).replace_schema_metadata(None) for p in sorted((table / "data").rglob("*.parquet"))])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine-corpus")
    manifest = demo.write_demo_corpus(root / "raw", n_tweets=2000)
    return root / "raw", manifest


@pytest.fixture(scope="module", params=["spark", "beam"])
def engine(request):
    """A distributed engine's name and local options (one local[2] SparkContext for the module's Spark tests)."""
    if request.param == "spark":
        yield "spark", SPARK_LOCAL
        spark_session.stop()
    else:
        yield "beam", BEAM_LOCAL


@pytest.fixture
def pii_key(monkeypatch):
    monkeypatch.setenv("TWEETMILL_PII_KEY", PII_KEY)


def _config(engine: str, options: dict, manifest: dict, stages=STAGES):
    return load_config(stages=list(stages), engine=engine, engine_options=options, part_rows=PART_ROWS,
                       readers={"csv_columns": manifest["csv_columns"], "piece_bytes": PIECE_BYTES})


@pytest.fixture(scope="module")
def polars_run(corpus, tmp_path_factory):
    raw, manifest = corpus
    table = tmp_path_factory.mktemp("polars") / "table"
    mp = pytest.MonkeyPatch()
    mp.setenv("TWEETMILL_PII_KEY", PII_KEY)
    try:
        report = pipeline.run([str(raw)], table, _config("polars", {}, manifest))
    finally:
        mp.undo()
    return table, report


def _steps(table: Path) -> dict[str, dict]:
    """Each kept step of a run's cache: its marker (parts, counts, logs), by step key."""
    cache = publish.sidecar(table, "cache")
    return {d.name: json.loads((d / MARKER).read_text()) for d in cache.iterdir() if (d / MARKER).exists()}


def _unpublished_steps(raw: Path, table: Path, config) -> dict[str, dict]:
    """The steps of a run that stops before its publish."""
    c = pipeline.Curation([str(raw)], table, config)
    c.ingest()
    for i in range(len(c.stages)):
        c.run_stage(i)
    return _steps(table)


def _assert_same_run(reference: tuple[Path, dict], table: Path, report: dict, engine: str) -> None:
    ref_table, ref = reference
    assert report["engine"] == engine and ref["engine"] == "polars"
    for key in ("input_records", "rejected", "output_records", "stages", "shards"):
        assert report[key] == ref[key], key
    assert _differences(_shards(ref_table), _shards(table)) == []
    for log in ("rejects", "drops"):  # Delta appends do not keep row order: compare the logs sorted
        ours, theirs = publish.read_log(table, log, report["run_id"]), publish.read_log(ref_table, log, ref["run_id"])
        assert ours.num_rows > 0
        assert _differences(_sorted(theirs.drop_columns(["run_id"])), _sorted(ours.drop_columns(["run_id"]))) == [], log


@pytest.mark.slow
def test_an_input_without_records_gives_an_empty_version_as_on_polars(engine, pii_key, tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    reports = {}
    for name, options in (("polars", {}), engine):
        config = load_config(stages=STAGES, engine=name, engine_options=options, part_rows=PART_ROWS)
        reports[name] = pipeline.run([str(tmp_path / "empty.jsonl")], tmp_path / name, config)
        assert pl.read_delta(str(tmp_path / name)).height == 0
    for key in ("input_records", "rejected", "output_records", "stages"):
        assert reports[engine[0]][key] == reports["polars"][key], key


def test_files_read_in_pieces_ingest_as_on_polars(engine, tmp_path):
    """Byte ranges of a JSON-lines file whose kind is set by a later line, and runs of row groups of a Parquet file
    with a damaged group: the same parts, rejects and counts as polars' whole-file reads."""
    raw = tmp_path / "raw"
    raw.mkdir()
    flat = [orjson.dumps({"tweet_id": str(i), "text": f"flat tweet {i}", "user_id": str(i % 9)}
                         | ({"favorite_count": i} if i % 2 else {})) for i in range(3000)]
    (raw / "a.jsonl").write_bytes(b"\n".join([b'{"note": "not a tweet"}'] * 500 + flat + [b'{"broken']) + b"\n")
    pq.write_table(pa.table({"id": [str(10**6 + i) for i in range(2000)], "text": [f"p {i}" for i in range(2000)]}),
                   raw / "b.parquet", row_group_size=250, compression="none")
    column = pq.ParquetFile(raw / "b.parquet").metadata.row_group(3).column(0)
    data = bytearray((raw / "b.parquet").read_bytes())
    data[column.data_page_offset : column.data_page_offset + 16] = b"\xff" * 16
    (raw / "b.parquet").write_bytes(bytes(data))
    options = ReaderOptions(piece_bytes=8 << 10)
    modes = [p.mode for p in plan_pieces(expand_inputs([str(raw)]), options)]
    assert modes.count("lines") > 10 and modes.count("parquet") > 2
    results = {}
    for name, engine_options in (("polars", {}), engine):
        run = make_engine(name, part_rows=PART_ROWS, **engine_options)
        results[name] = run.ingest([str(raw)], options, tmp_path / name, keep_original=False)
    ref, ours = results["polars"], results[engine[0]]
    assert (ours.records, ours.rejected) == (ref.records, ref.rejected) == (500 + 3000 + 1 + 1750 + 1, 500 + 1 + 1)
    assert _differences(_parts(ref.parts), _parts(ours.parts)) == []
    assert _differences(_read_folder_or_file(ref.rejects), _read_folder_or_file(ours.rejects)) == []
    assert set(_parts(ours.parts).column("source_format").to_pylist()) == {"jsonl", "parquet"}


@pytest.mark.slow
def test_pipeline_run_equals_polars_stage_by_stage(corpus, polars_run, engine, pii_key, tmp_path):
    """Every stage available here, end to end through transforms.pipeline.run."""
    raw, manifest = corpus
    table = tmp_path / "table"
    # Each step's working output, compared step by step: taken before the publish, which deletes the steps of a run
    # that scrubs PII (the run below reuses them).
    ours, theirs = (_unpublished_steps(raw, tmp_path / folder, _config(name, options, manifest))
                    for folder, (name, options) in (("steps", engine), ("ref", ("polars", {}))))
    report = pipeline.run([str(raw)], table, _config(*engine, manifest))
    _assert_same_run(polars_run, table, report, engine[0])
    assert [s["name"] for s in report["stages"]] == STAGES
    assert sum(s["dropped"] for s in report["stages"]) > 0 and report["rejected"] > 0  # the corpus exercises both
    assert sorted(ours) == sorted(theirs) and len(ours) == len(STAGES) + 1
    for key, mine in ours.items():
        ref = theirs[key]
        name = ref.get("kind")
        assert _differences(_parts(ref["parts"]), _parts(mine["parts"])) == [], (name, key)
        for counted in ("records", "rejected", "rows_in", "rows_out", "drop_reasons"):
            assert mine.get(counted) == ref.get(counted), (name, counted)
        for log in ("drops", "rejects"):
            if ref.get(log):
                assert _differences(_read_folder_or_file(ref[log]), _read_folder_or_file(mine[log])) == [], log


@pytest.mark.slow
def test_annotate_equals_polars(corpus, engine, pii_key, tmp_path):
    raw, manifest = corpus
    outputs = {}
    for name, options in (("polars", {}), engine):
        outputs[name] = tmp_path / f"{name}.parquet"
        outputs[name + "_summary"] = pipeline.annotate([str(raw)], outputs[name], _config(name, options, manifest))
    rejects = [pq.read_table(outputs[name + "_summary"].pop("rejects")) for name in ("polars", engine[0])]
    assert outputs[engine[0] + "_summary"] == outputs["polars_summary"]
    assert rejects[0].num_rows > 0 and _differences(_sorted(rejects[0]), _sorted(rejects[1])) == []
    ref, ours = pq.read_table(outputs["polars"]), pq.read_table(outputs[engine[0]])
    assert _differences(ref, ours) == []
    assert ours.column("drop_reason").null_count < ours.num_rows  # something was tagged, nothing dropped


@pytest.mark.slow
def test_the_gate_checks_a_large_runs_slices_in_the_engines_workers(engine, tmp_path, monkeypatch):
    """The gate's slices and buckets of a large run as the engine's tasks, in its worker processes: the verdicts of
    the gate checking them itself."""
    from expectations import gate
    from expectations.gate import validate_output

    _, shards, report = dirty_run(tmp_path)
    monkeypatch.setattr(gate, "SLICE_ROWS", 100)
    config = load_config(settings={"langid": {"languages": ["de", "en", "es", "fr"]}})
    here = validate_output(shards, config=config, report=report, out_dir=tmp_path / "here")
    forbid_slices_here(monkeypatch)
    # Beam in worker processes (in_memory runs its tasks in this one)
    options = {**engine[1], "running_mode": "multi_processing", "workers": 2} if engine[0] == "beam" else engine[1]
    runner = make_engine(engine[0], part_rows=PART_ROWS, **options).run_tasks
    workers = validate_output(shards, config=config, report=report, out_dir=tmp_path / "workers", runner=runner)
    assert not workers.success and (workers.evaluated, verdicts(workers)) == (here.evaluated, verdicts(here))
    assert len(workers.failures) == 6


@pytest.mark.slow
def test_worker_errors_reach_the_caller_as_themselves(corpus, engine, tmp_path):
    """A stage failing inside a worker raises its own exception type on the driver (the CLI relies on it)."""
    if "pii" not in STAGES:
        pytest.skip("the pii stage is not available here")
    raw, manifest = corpus
    # Beam in worker processes, where the runner reports a worker's exception as text
    options = {**engine[1], "running_mode": "multi_processing", "workers": 2} if engine[0] == "beam" else engine[1]
    engine = make_engine(engine[0], part_rows=PART_ROWS, **options)
    ingested = engine.ingest([str(raw / "v2_pages.jsonl")], ReaderOptions(), tmp_path / "ingest", False)
    pii = stage_class("pii")
    stage = pii(pii.Config(pseudonym_key_env="TWEETMILL_TEST_KEY_NOBODY_SET"))
    missing = importlib.import_module(stage_class("pii").__module__).MissingKey
    with pytest.raises(missing, match="TWEETMILL_TEST_KEY_NOBODY_SET"):
        engine.run_stage(stage, ingested.parts, tmp_path / "pii", False)


@pytest.mark.slow
def test_append_dedupes_against_published_rows_like_polars(corpus, engine, tmp_path):
    """An append run is deduped against the rows the table already holds (history), the same way on both engines."""
    raw, manifest = corpus
    first, second = [str(raw / "v2_pages.jsonl"), str(raw / "v1_timeline.json")], [str(raw / "v2_flat.jsonl.zst")]
    stages = [s for s in ("normalize", "dedupe_exact", "dedupe_minhash") if s in STAGES]
    tables = {}
    for name, options in (("polars", {}), engine):
        config = _config(name, options, manifest, stages)
        tables[name] = tmp_path / name
        pipeline.run(first, tables[name], config)
        tables[name + "_report"] = pipeline.run(first + second, tables[name], config)
    ref, ours = tables["polars_report"], tables[engine[0] + "_report"]
    for key in ("input_records", "output_records", "stages"):
        assert ours[key] == ref[key], key
    assert ours["output_records"] < ours["input_records"] - ours["rejected"] - ref["stages"][0]["dropped"]
    assert _differences(_shards(tables["polars"]), _shards(tables[engine[0]])) == []
    drops = [_sorted(publish.read_log(tables[e], "drops", tables[e + "_report"]["run_id"]).drop_columns(["run_id"]))
             for e in ("polars", engine[0])]
    assert _differences(*drops) == []
    for stage in stages[1:]:  # each dedupe stage's state of the published rows, written by the engine's workers
        files = {e: pipeline.history_files(tables[e], stage) for e in ("polars", engine[0])}
        assert len({run for run, _ in files[engine[0]]}) == 2 and len(files[engine[0]]) > 2  # the append read several
        states = [pa.concat_tables(pq.read_table(f) for _, f in files[e]) for e in ("polars", engine[0])]
        assert states[0].num_rows > ref["output_records"] and _differences(*states) == []
        assert states[1].schema.metadata == states[0].schema.metadata


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dedupe_exact", "dedupe_minhash"])
def test_dedupe_tie_breaks_match_polars(engine, tmp_path, name):
    """Duplicates that tie on created_at (or lack it) and on id, spread over parts: the same row is kept."""
    if name not in STAGES:
        pytest.skip(f"the {name} stage is not available here")
    rng = np.random.default_rng(5)
    texts = ["the same words again and again in one tweet", "another tweet that is written twice or more",
             "a third sentence shared by several rows here", "only one row says this and nobody else at all"]
    rows = [{"id": str(int(rng.integers(1, 9)) * 1000 + int(rng.integers(0, 3))), "text": texts[int(rng.integers(0, 4))],
             "created_at": [None, 100, 200][int(rng.integers(0, 3))], "source_line": i + 1} for i in range(90)]
    normalized = PolarsEngine(part_rows=30).run_stage(
        Normalize(), write_parts(tweets(rows), tmp_path / "in", 30), tmp_path / "normalized", False).parts
    results = {}
    for runner in (PolarsEngine(part_rows=30), make_engine(engine[0], part_rows=30, **engine[1])):
        result = runner.run_stage(stage_class(name)(), normalized, tmp_path / runner.name, False)
        results[runner.name] = (_parts(result.parts), _read_folder_or_file(result.drops), result.drop_reasons)
    (ref_rows, ref_drops, ref_counts), (rows_, drops, counts) = results["polars"], results[engine[0]]
    assert counts == ref_counts and sum(counts.values()) > 50
    assert _differences(ref_rows, rows_) == [] and _differences(ref_drops, drops) == []


@pytest.mark.slow
def test_chained_near_duplicates_group_as_on_polars(engine, tmp_path):
    """Tweets that each repeat most of the one before (a window sliding over one text) are one group, though the
    chain's ends share few words: the buckets' stars overlap, so the engine's components need rounds."""
    if "dedupe_minhash" not in STAGES:
        pytest.skip("the dedupe_minhash stage is not available here")
    rng = np.random.default_rng(11)
    words = [f"w{int(x)}" for x in rng.integers(0, 5_000, 400)]
    chains = [" ".join(words[i:i + 30]) for i in range(0, 120)] + [" ".join(words[i:i + 30]) for i in range(200, 260)]
    rows = [{"id": str(1000 + i), "text": text, "created_at": int(rng.integers(0, 50)), "source_line": i + 1}
            for i, text in enumerate(chains)]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    normalized = PolarsEngine(part_rows=40).run_stage(
        Normalize(), write_parts(tweets(rows), tmp_path / "in", 40), tmp_path / "normalized", False).parts
    results = {}
    for runner in (PolarsEngine(part_rows=40), make_engine(engine[0], part_rows=40, **engine[1])):
        result = runner.run_stage(stage_class("dedupe_minhash")(), normalized, tmp_path / runner.name, False)
        results[runner.name] = (_parts(result.parts), _read_folder_or_file(result.drops), result.drop_reasons)
    (ref_rows, ref_drops, ref_counts), (rows_, drops, counts) = results["polars"], results[engine[0]]
    assert ref_rows.num_rows == 2  # one row kept per chain
    assert counts == ref_counts
    assert _differences(ref_rows, rows_) == [] and _differences(ref_drops, drops) == []


@pytest.mark.slow
def test_toxicity_transformer_scores_as_on_polars(engine, tmp_path):
    """The transformer's scores do not depend on how an engine batches rows (transforms/encoder.py), so its
    verdicts, scores and drops are polars' on every engine."""
    texts, _ = synthetic_toxic_tweets(150, 4)
    texts += ["you are a fucking idiot", "@Someone what a moron https://t.co/x1", "have a lovely day", ""]
    rows = [{"id": str(500 + i), "text": text, "created_at": i, "source_line": i + 1} for i, text in enumerate(texts)]
    normalized = PolarsEngine(part_rows=40).run_stage(
        Normalize(), write_parts(tweets(rows), tmp_path / "in", 40), tmp_path / "normalized", False).parts
    small_toxicity_transformer(tmp_path / "transformer")
    stage = Toxicity(ToxicityConfig(transformer={"path": tmp_path / "transformer", "margin": 1.0, "device": "cpu"}))
    results = {}
    for runner in (PolarsEngine(part_rows=40), make_engine(engine[0], part_rows=40, **engine[1])):
        result = runner.run_stage(stage, normalized, tmp_path / runner.name, False)
        results[runner.name] = (_parts(result.parts), _read_folder_or_file(result.drops), result.drop_reasons)
    (ref_rows, ref_drops, ref_counts), (rows_, drops, counts) = results["polars"], results[engine[0]]
    assert 0 < counts.get("toxic", 0) < len(texts) and counts == ref_counts
    assert _differences(_sorted(ref_rows), _sorted(rows_)) == [] and _differences(_sorted(ref_drops), _sorted(drops)) == []


@pytest.fixture(params=[None, "2"], ids=["unset", "set-to-2"])
def omp_threads(request, monkeypatch) -> str | None:
    """The caller's OMP_NUM_THREADS: unset, or 2."""
    if request.param is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", request.param)
    return request.param


def test_polars_worker_processes_run_native_code_on_one_thread_each(omp_threads):
    """The polars engine runs one worker process per core, so torch (OpenMP) in each gets one thread, as in Spark's
    Python workers, not one per core (N x N threads oversubscribed the cores); a size the caller set is kept."""
    import torch

    from transforms.engines.polars import _worker_pool

    with _worker_pool(Normalize(), 2) as pool:
        threads = {pool.submit(torch.get_num_threads).result() for _ in range(4)}
    assert threads == {int(omp_threads or 1)}


@pytest.mark.slow
def test_beam_worker_processes_run_native_code_on_one_thread_each(omp_threads, tmp_path):
    """The same for the worker processes Beam's local runner starts (multi_processing): a stage's tasks run there
    with torch on one thread, or on the caller's setting."""
    engine = make_engine("beam", part_rows=20, running_mode="multi_processing", workers=2)
    rows = [{"id": str(100 + i), "text": f"tweet number {i}", "created_at": i} for i in range(80)]
    parts = write_parts(tweets(rows), tmp_path / "in", 20)
    result = engine.run_stage(probe.Probe(probe.ProbeConfig(seconds=0)), parts, tmp_path / "probe", False)
    runs = _probe_runs(result.parts, ("pid", "threads"))
    assert len(runs) == 4 and os.getpid() not in {pid for pid, _ in runs}  # in Beam's worker processes
    assert {threads for _, threads in runs} == {int(omp_threads or 1)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _standalone_cluster(folder: Path, **settings: str) -> Iterator[str]:
    """A real standalone cluster (master + 1 worker on 127.0.0.1, state under `folder`) for the test; its master URL.
    `settings`: start-cluster.sh's environment (cores, GPUs). Stopped after, with nothing left running."""
    env = {**os.environ, "SPARK_STATE_DIR": str(folder), "SPARK_MASTER_PORT": str(_free_port()),
           "SPARK_MASTER_WEBUI_PORT": str(_free_port()), "SPARK_WORKERS": "1", "SPARK_WORKER_CORES": "2",
           "SPARK_WORKER_MEMORY": "2g", "PYTHON": sys.executable, **settings}
    started = subprocess.run([str(REPO / "infra/spark/start-cluster.sh")], env=env, capture_output=True, text=True,
                             timeout=300)
    try:
        assert started.returncode == 0, started.stderr[-2000:]
        master = started.stdout.strip().splitlines()[-1]
        assert master == f"spark://127.0.0.1:{env['SPARK_MASTER_PORT']}"
        yield master
    finally:
        spark_session.stop()
        subprocess.run([str(REPO / "infra/spark/stop-cluster.sh")], env=env, capture_output=True, timeout=120)
    assert not list(folder.glob("*.pid"))


@pytest.mark.slow
def test_standalone_cluster_gives_the_same_rows(corpus, polars_run, pii_key, tmp_path):
    """The same run submitted to a real standalone cluster (master + 1 worker on 127.0.0.1) started for the test."""
    raw, manifest = corpus
    with _standalone_cluster(tmp_path / "cluster") as master:
        table = tmp_path / "table"
        options = {"master": master, "shuffle_partitions": 4, "executor_memory": "1g"}
        report = pipeline.run([str(raw)], table, _config("spark", options, manifest))
        _assert_same_run(polars_run, table, report, "spark")
        apps = list((tmp_path / "cluster" / "work-1").iterdir())
        assert len(apps) == 1 and apps[0].name.startswith("app-")  # the work ran on the cluster's worker


def _probe_runs(parts, columns=("device", "started", "ended")) -> list[tuple]:
    """The probe stage's report of each part's task (one task a part: one value a column)."""
    runs = []
    for part in parts:
        table = read_part(part).select(list(columns))
        assert table.num_rows and all(len(set(table.column(c).to_pylist())) == 1 for c in columns)
        runs.append(tuple(table.column(c)[0].as_py() for c in columns))
    return runs


@pytest.mark.slow
def test_standalone_cluster_gives_each_gpu_stage_task_its_own_gpu(tmp_path):
    """On a standalone cluster whose worker offers two GPUs (start-cluster.sh's SPARK_GPUS: its discovery script
    names them, which is all Spark checks) and four cores, a GPU stage's tasks ask for one GPU each: at most two run
    at once, and tasks running at the same time run on different GPUs, each the one Spark gave it. Where torch sees
    no such GPU, the real stage stops on its first task saying so."""
    from pyspark import cloudpickle

    cloudpickle.register_pickle_by_value(probe)  # executors cannot import tests/
    try:
        with _standalone_cluster(tmp_path / "cluster", SPARK_WORKER_CORES="4", SPARK_GPUS="2") as master:
            engine = make_engine("spark", part_rows=20, master=master, executor_memory="1g",
                                 conf={"spark.executor.resource.gpu.amount": 2})
            rows = [{"id": str(100 + i), "text": f"tweet number {i} about the garden", "created_at": i}
                    for i in range(160)]
            parts = write_parts(tweets(rows), tmp_path / "in", 20)
            result = engine.run_stage(probe.Probe(), parts, tmp_path / "probe", False)
            runs = _probe_runs(result.parts)
            assert len(runs) == 8 and {device for device, _, _ in runs} == {"cuda:0", "cuda:1"}
            at_once = [[r for r in runs if r[1] <= start < r[2]] for _, start, _ in runs]
            assert max(map(len, at_once)) == 2  # two tasks ran together (four cores), never three (two GPUs)
            assert all(len({device for device, _, _ in group}) == len(group) for group in at_once)
            import torch

            if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
                with pytest.raises(SetupError, match=r"gave this task the GPU '[01]' .* sees no GPU"):
                    engine.run_stage(DedupeSemantic(), parts, tmp_path / "semantic", False)
    finally:
        cloudpickle.unregister_pickle_by_value(probe)


def test_beam_asks_for_the_accelerator_on_gpu_stage_tasks_only(tmp_path):
    """A GPU stage's tasks carry the `accelerator` resource hint (Dataflow's GPU request); other tasks carry none,
    and the local runner runs hinted tasks as any other (no GPU assigned: the stage keeps its device)."""
    import apache_beam as beam

    hint = "type:nvidia-l4;count:1;install-nvidia-driver"
    engine = make_engine("beam", part_rows=20, running_mode="in_memory", accelerator=hint)
    parts = [str(p) for p in write_parts(tweets([{"id": "1", "text": "a tweet", "created_at": 1}]), tmp_path / "in", 1)]

    def hints(stage):
        task = BatchTask(stage, parts, str(tmp_path / "out"), 20, False)
        return engine._task_step(task, str(tmp_path / "statuses"), beam.ParDo).get_resource_hints()

    assert hints(probe.Probe()) == {"beam:resources:accelerator:v1": hint.encode()}
    assert hints(probe.Probe(probe.ProbeConfig(device="cpu"))) == {}
    assert hints(Normalize()) == {}
    result = engine.run_stage(probe.Probe(probe.ProbeConfig(seconds=0)), parts, tmp_path / "run", False)
    assert [device for device, _, _ in _probe_runs(result.parts)] == ["auto"]


@pytest.mark.slow
def test_beam_worker_processes_give_the_same_rows(corpus, polars_run, pii_key, tmp_path):
    """The same run on Beam's local runner with its default workers, processes of their own, as a cluster's runner
    has them: the stages travel pickled and set up once per worker."""
    raw, manifest = corpus
    table = tmp_path / "table"
    report = pipeline.run([str(raw)], table, _config("beam", {"workers": 2, "partitions": 2}, manifest))
    _assert_same_run(polars_run, table, report, "beam")


@pytest.mark.slow
def test_beam_portable_job_server_gives_the_same_rows(corpus, polars_run, pii_key, tmp_path):
    """The same run submitted through Beam's portable runner API, as to Flink: a job service and a worker pool on
    127.0.0.1, started for the test by infra/beam/start-job-server.sh (the pool's workers take the PII key from
    their own environment)."""
    raw, manifest = corpus
    env = {**os.environ, "BEAM_STATE_DIR": str(tmp_path / "beam"), "BEAM_JOB_PORT": str(_free_port()),
           "BEAM_WORKER_POOL_PORT": str(_free_port()), "PYTHON": sys.executable}
    started = subprocess.run([str(REPO / "infra/beam/start-job-server.sh")], env=env, capture_output=True, text=True,
                             timeout=180)
    try:
        assert started.returncode == 0, started.stderr[-2000:]
        pipeline_args = started.stdout.split()
        assert pipeline_args[0] == f"--job_endpoint=127.0.0.1:{env['BEAM_JOB_PORT']}"
        table = tmp_path / "table"
        options = {"runner": "PortableRunner", "pipeline_args": pipeline_args}
        report = pipeline.run([str(raw)], table, _config("beam", options, manifest))
        _assert_same_run(polars_run, table, report, "beam")
        assert "Starting worker" in (tmp_path / "beam" / "worker-pool.log").read_text()  # the pool ran the work
    finally:
        subprocess.run([str(REPO / "infra/beam/stop-job-server.sh")], env=env, capture_output=True, timeout=120)
    assert not list((tmp_path / "beam").glob("*.pid"))



class _Flaky:
    """Fails its first `failures` calls with `error`, then yields its element twice."""

    def __init__(self, failures: int, error: Exception):
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self, element):
        self.calls += 1
        yield "partial"  # an output before the failure: a new try must not emit it twice
        if self.calls <= self.failures:
            raise self.error
        yield element


def test_beam_tries_an_element_again_on_io_that_may_pass_and_keeps_other_errors(tmp_path, monkeypatch):
    """Kept errors are final (the runner never sees them), so the guard itself tries again where a new try may
    pass, and never emits an element's outputs twice."""
    from transforms.engines import beam as beam_engine

    monkeypatch.setattr(beam_engine, "RETRY_WAITS", (0.0, 0.0))
    flaky = _Flaky(2, ConnectionResetError("the store hung up"))
    assert list(beam_engine._Guarded(flaky, str(tmp_path)).process(7)) == ["partial", 7]
    assert flaky.calls == 3 and not list(tmp_path.iterdir())

    for error, calls in ((ConnectionResetError("still down"), 3), (FileNotFoundError("gone"), 1),
                         (ValueError("bad input"), 1)):
        flaky = _Flaky(5, error)
        assert list(beam_engine._Guarded(flaky, str(tmp_path)).process(7)) == []
        assert flaky.calls == calls
        kept = list(tmp_path.iterdir())
        assert len(kept) == 1 and type(pickle.loads(kept[0].read_bytes())) is type(error)
        kept[0].unlink()


def test_importing_the_beam_engine_prints_nothing():
    """apache_beam's import warns that its Google Cloud extras are missing; a Beam run's output does not open with
    it, and the root logger is left as it was (no handler set up for that warning)."""
    code = ("import logging, transforms.engines.beam; root = logging.getLogger(); "
            "print(len(root.handlers), len(root.filters))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0 and done.stderr == "" and done.stdout.split() == ["0", "0"]
