"""One curation run, engine-neutral: ingest -> stages -> shards -> publish, with counts that always reconcile.

`Curation` exposes the run as steps (the Prefect flow in flows/curate.py makes each one a task); `run` calls them in
order; `annotate` runs the same stages but drops nothing. Finished steps are kept (transforms/steps.py), so a rerun
after a crash resumes where it stopped.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Callable, Literal, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import transforms
from transforms import publish
from transforms.config import ConfigError, PipelineConfig
from transforms.engines import make_engine
from transforms.engines.common import ORIGINAL_TEXT, IngestResult, StepResult
from transforms.engines.staging import read_part
from transforms.models import sha256_file
from transforms.readers import ReaderOptions, expand_inputs, fingerprint
from transforms.schema import TWEET_SCHEMA
from transforms.stages.base import DedupeStage
from transforms.steps import StepCache, step_key

Mode = Literal["append", "overwrite"]


# Called with the number of records each step just processed; the CLI points it at its progress bar.
progress_hook: Callable[[int], None] | None = None


class RejectRateExceeded(RuntimeError):
    """Too many input records could not be parsed: nothing is published. `files`: the inputs whose own share of
    rejects is above the limit (a landing run sets them aside and goes on with the rest)."""

    def __init__(self, message: str, files: Sequence[str] = ()):
        super().__init__(message)
        self.files = list(files)

    def __reduce__(self):
        return type(self), (str(self), self.files)


class EmptyOverwrite(RuntimeError):
    """An overwrite whose input left no rows would replace a table that has rows with an empty version: refused
    (an empty or unreadable dump is far likelier than a wish to empty the table)."""


class GateFailed(RuntimeError):
    """The input (raw suite) or the output (curated suite) failed its data-quality suite: nothing is published,
    the working data and the results stay for inspection."""

    def __init__(self, gate):
        self.gate = gate
        names = ", ".join(sorted({f["expectation"] + (f"({f['column']})" if f.get("column") else "") for f in gate.failures}))
        super().__init__(f"data-quality gate failed ({gate.suite} suite): {names}; nothing published; "
                         f"results: {gate.result_path}")


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


def stage_summary(name: str, result: StepResult, reused: bool) -> dict:
    return {
        "name": name,
        "input": result.rows_in,
        "output": result.rows_out,
        "dropped": result.rows_in - result.rows_out,
        "reasons": dict(sorted(result.drop_reasons.items())),
        "reused": reused,
    }


class Curation:
    """The steps of one run over `inputs` into the Delta table `table`; call them in order."""

    def __init__(
        self,
        inputs: Sequence[str],
        table: str | Path,
        config: PipelineConfig,
        *,
        mode: Mode = "append",
        run_id: str | None = None,
        progress: Callable[[int], None] | None = None,
        annotate_only: bool = False,
        cache_root: Path | None = None,
    ):
        self.table = Path(table).absolute()
        self.config, self.mode, self.annotate_only = config, mode, annotate_only
        self.run_id = run_id or new_run_id()
        self.files = expand_inputs(inputs)
        self.stages = preflight(config, None if annotate_only else self.table, mode)
        self.engine = make_engine(config.engine, part_rows=config.part_rows, progress=progress or progress_hook,
                                  **config.engine_settings())
        self.cache = StepCache(cache_root or publish.sidecar(self.table, "cache"))
        self.inputs = [{"path": f, "fingerprint": fingerprint(f)} for f in self.files]
        self.keys: list[str] = []
        self.ingested: IngestResult | None = None
        self.outcomes: list[dict] = []
        self.parts: list[Path] = []
        self.shards: list[Path] = []
        self.gate = self.input_gate = None
        self.logged: set[str] = set()

    # -- steps ----------------------------------------------------------------------------------------------------
    def ingest(self) -> IngestResult:
        readers = self.config.readers
        key = step_key("ingest", self.inputs, readers.model_dump(mode="json"), self.config.part_rows,
                       self.annotate_only, code_version())
        options = ReaderOptions(format=readers.format, csv_columns=dict(readers.csv_columns),
                                piece_bytes=readers.piece_bytes)
        result, _ = self.cache.run(
            key, lambda folder: self.engine.ingest(self.files, options, folder, keep_original=self.annotate_only)
        )
        self.keys, self.ingested, self.parts = [key], result, result.parts
        return result

    def check_rejects(self) -> None:
        ingest, limit = self.ingested, self.config.max_reject_rate
        rate = ingest.rejected / ingest.records if ingest.records else 0.0
        if rate <= limit:
            return
        per_file = self.rejects_per_file()
        over = [f for f, (rejected, records) in per_file.items() if rejected / records > limit]
        worst = ", ".join(f"{f} ({rejected} of {records})" for f, (rejected, records) in list(per_file.items())[:3])
        source = ("max_reject_rate" if "max_reject_rate" in self.config.model_fields_set else
                  "the default max_reject_rate: set it in the config or with --max-reject-rate")
        raise RejectRateExceeded(
            f"{ingest.rejected} of {ingest.records} input records rejected ({rate:.1%}), above the limit of "
            f"{limit:.1%} ({source}); most in {worst}; nothing published", over)

    def rejects_per_file(self) -> dict[str, tuple[int, int]]:
        """Input file -> (records rejected, records read), most rejects first."""
        rejected = Counter(pq.read_table(self.ingested.rejects, columns=["source_file"]).column(0).to_pylist())
        read = Counter(rejected)
        for part in self.ingested.parts:
            counts = pc.value_counts(read_part(part, ["source_file"]).column(0)).to_pylist()
            read.update({c["values"]: c["counts"] for c in counts})
        return {f: (n, read[f]) for f, n in sorted(rejected.items(), key=lambda item: (-item[1], item[0]))}

    def validate_input(self):
        """Run the raw suite on the ingested rows: input the readers could not bring to the canonical schema stops
        the run here, before any stage works on it."""
        from expectations.gate import validate_input

        out_dir = publish.sidecar(self.table, "validations") / self.run_id / "input"
        self.input_gate = validate_input(self.ingested.parts, out_dir=out_dir, runner=self.engine.run_tasks)
        if not self.input_gate.success:
            raise GateFailed(self.input_gate)
        return self.input_gate

    def history(self, stage) -> tuple[list[Path], list[str]]:
        """The files of a dedupe stage's state of the rows the table already holds (append runs only), and the runs
        they cover. The engine reads them (Spark and Beam in their workers, a task per file)."""
        if self.annotate_only or self.mode == "overwrite" or not isinstance(stage, DedupeStage):
            return [], []
        own = self.own_version().get("run_id")
        files = [(run, f) for run, f in history_files(self.table, stage.name) if run != own]
        return [f for _, f in files], sorted({run for run, _ in files})

    @functools.cached_property
    def models(self) -> list[dict]:
        """The model files the stages load, by name and SHA-256: a version says which models judged its rows (the
        shipped models' cards give the same digest), so a retrained or swapped model shows."""
        return [{"stage": s.name, "file": Path(m).name, "sha256": sha256_file(m)}
                for s in self.stages for m in s.resources.model_files]

    @functools.cached_property
    def command_key(self) -> str:
        """Inputs, settings, models, code and mode: what a rerun of the same command repeats. Unlike the step keys
        it does not depend on the table's history, which a crashed run's own commit has already changed."""
        models = [fingerprint(str(m)) for s in self.stages for m in s.resources.model_files]
        return step_key(self.inputs, self.config.fingerprint(), models, code_version(), self.mode)

    def own_version(self) -> dict:
        """The latest version's metadata when this same command published it (a crash after the commit, or the same
        run twice): its rows are this run's own, not history to dedupe against, and are not published again."""
        latest = publish.latest_metadata(self.table)
        return latest if latest.get("command_key") == self.command_key else {}

    def run_stage(self, index: int) -> dict:
        stage = self.stages[index]
        models = [fingerprint(str(m)) for m in stage.resources.model_files]  # a retrained model invalidates the step
        history, history_runs = self.history(stage)
        key = step_key(self.keys[-1], stage.name, stage.config.model_dump(mode="json"), models, history_runs,
                       code_version())
        result, reused = self.cache.run(
            key, lambda folder: self.engine.run_stage(stage, self.parts, folder, self.annotate_only, history=history)
        )
        self.keys.append(key)
        self.parts = result.parts
        summary = stage_summary(stage.name, result, reused) | {"drops": str(result.drops) if result.drops else None}
        self.outcomes.append(summary)
        return summary

    def write_shards(self) -> list[Path]:
        hidden = {ORIGINAL_TEXT} | {c for s in self.stages for c in s.internal}
        out = self.config.output
        folder = publish.data_dir(self.table, self.run_id)
        shutil.rmtree(folder, ignore_errors=True)
        self.shards = self.engine.write_shards(
            self.parts,
            folder,
            name=lambda i: f"part-{i:05d}.zstd.parquet",
            columns=lambda schema: [n for n in schema.names if n not in hidden],
            max_rows=out.shard_max_rows,
            max_bytes=out.shard_max_bytes,
            row_group_rows=out.row_group_rows,
        )
        if self.shards:
            self.schema = pq.read_schema(self.shards[0])
        else:
            self.schema = pa.schema([f for f in read_part(self.parts[0]).schema if f.name not in hidden])
        return self.shards

    def validate(self):
        """Run the curated suite on the written shards, before anything is committed."""
        from expectations.gate import validate_output

        out_dir = publish.sidecar(self.table, "validations") / self.run_id
        self.gate = validate_output(self.shards, config=self.config, report=self.report(), out_dir=out_dir,
                                    runner=self.engine.run_tasks)
        if not self.gate.success:
            raise GateFailed(self.gate)
        return self.gate

    def check_overwrite(self) -> None:
        if self.mode != "overwrite" or self.report()["output_records"] or not publish.table_exists(self.table):
            return
        rows = publish.snapshot_rows(self.table)
        if rows:
            raise EmptyOverwrite(f"refusing to overwrite {self.table} ({rows} rows) with an empty version: no input "
                                 "record is left after the stages (delete the table to empty it); nothing published")

    def report(self) -> dict:
        ingest = self.ingested
        output = self.outcomes[-1]["output"] if self.outcomes else ingest.records - ingest.rejected
        return {
            "run_id": self.run_id,
            "table": str(self.table),
            "mode": self.mode,
            "input_records": ingest.records,
            "rejected": ingest.rejected,
            "output_records": output,
            "stages": [{k: v for k, v in o.items() if k != "drops"} for o in self.outcomes],
            "config_hash": self.config.fingerprint(),
            "config": self.config.model_dump(mode="json"),  # what `tweetmill validate` re-checks a version with
            "code_version": code_version(),
            "models": self.models,
            "engine": self.engine.name,
            "inputs": self.inputs,
            "shards": len(self.shards),
        } | {key: {"success": gate.success, "result": str(gate.result_path), "docs": str(gate.docs_path)}
             for key, gate in (("input_validation", self.input_gate), ("validation", self.gate)) if gate is not None}

    def publish(self) -> dict:
        """Commit the shards as a new version (logs first: the data commit is the publish point).

        Idempotent: if the table's latest version came from this same command (a crash after the commit, or the
        same run twice), nothing new is committed; what followed that commit is finished and that version returned.
        """
        report = self.report()
        own = self.own_version()
        if own:
            if own["run_id"] != self.run_id:  # a rerun's copy of shards already published (not a retry's own)
                shutil.rmtree(publish.data_dir(self.table, self.run_id), ignore_errors=True)
            try:
                return publish.read_report(self.table, own["run_id"]) | {"already_published": True}
            except FileNotFoundError:  # killed between the commit and the report: the steps gave the same rows
                report |= {k: own[k] for k in ("run_id", "version", "validation") if k in own}
                return self.after_commit(report, previous={}) | {"already_published": True}
        previous = publish.latest_metadata(self.table)
        logs = {"rejects": self.published_rejects()}
        drops = [pq.read_table(o["drops"]) for o in self.outcomes if o["drops"]]
        if drops:
            logs["drops"] = pa.concat_tables(drops)
        for name, rows in logs.items():
            if name not in self.logged:  # a retried publish (a Prefect task retry) does not log a run twice
                publish.append_log(self.table, name, rows, self.run_id)
                self.logged.add(name)
        meta = {k: report[k] for k in ("run_id", "config_hash", "config", "code_version", "models", "input_records",
                                       "rejected", "output_records", "inputs", "stages")}
        meta |= {"command_key": self.command_key, "steps": self.keys}
        self.write_history()
        meta |= {k: report[k] for k in ("input_validation", "validation") if k in report}
        report["version"] = publish.commit_shards(self.table, self.shards, self.schema, meta, mode=self.mode)
        return self.after_commit(report, previous)

    def published_rejects(self) -> pa.Table:
        """The run's rejects as they go beside the data: when the run scrubs PII, excerpts keep only their shape."""
        rejects = pq.read_table(self.ingested.rejects)
        if any(stage.name == "pii" for stage in self.stages):
            from transforms.stages.pii import mask_excerpts

            column = rejects.schema.get_field_index("excerpt")
            rejects = rejects.set_column(column, "excerpt", mask_excerpts(rejects.column("excerpt")).cast(pa.string()))
        return rejects

    def after_commit(self, report: dict, previous: dict) -> dict:
        """The version's data card and report, then forget the steps of the version published before this one that
        this run did not reuse (a rerun with one setting changed reuses the rest). Only a published run's steps are
        forgotten: another run writing to the table at the same time keeps its own. A run that scrubs PII forgets
        its own steps too: they hold the raw text, authors and reject excerpts, and must not outlive the publish
        beside the scrubbed table."""
        report["data_card"] = str(self.write_data_card(report))
        publish.write_report(self.table, report["run_id"], report)
        forget = set(previous.get("steps", [])) - set(self.keys)
        if any(stage.name == "pii" for stage in self.stages):
            forget |= set(self.keys)
        self.cache.forget(forget)
        return report


    def write_history(self) -> None:
        """Persist each dedupe stage's state of the rows about to be published (named by run: a version's history
        is the files of the runs whose shards it holds, so a failed commit leaves nothing that counts)."""
        for stage in self.stages:
            if isinstance(stage, DedupeStage):  # computed by the engine's workers, as the stage's own step was
                self.engine.write_history(stage, self.parts, publish.sidecar(self.table, "history") / stage.name
                                          / self.run_id)

    def write_data_card(self, report: dict) -> Path:
        from transforms import versions
        from transforms.datacard import write_data_card

        v = report["version"]
        previous = versions.diff(self.table, v - 1, v) if v > 0 else None
        out = publish.sidecar(self.table, "cards") / f"v{v}"
        return write_data_card(self.table, v, report, versions.shard_uris(self.table, v), previous, out)


def preflight(config: PipelineConfig, table: str | Path | None = None, mode: Mode = "append") -> list:
    """The configured stages, each checked for what it needs from this environment (SetupError if missing); a
    standalone Spark master, checked for being there (ConfigError); and, for an append, the table's columns, which
    must be the ones these stages publish (ConfigError: the commit would refuse them after all the work), and each
    dedupe stage's state of the published rows, which must have been made as this run makes it (ConfigError: the
    stage would refuse it mid-run)."""
    if config.engine == "spark":
        from transforms.engines.spark_session import SparkOptions

        options = SparkOptions(**config.engine_options)  # valid: the config checked them
        problem = options.unreachable_master()
        if problem:
            raise ConfigError(f"cannot reach the Spark master {options.master} ({problem})")
    stages = config.build_stages()
    for stage in stages:
        stage.preflight()
    if table is not None and mode == "append" and publish.table_exists(Path(table)):
        have, want = publish.column_names(Path(table)), published_columns(stages)
        if have != want:
            extra, missing = [c for c in have if c not in want], [c for c in want if c not in have]
            raise ConfigError(
                f"{table} holds other columns than these stages publish ("
                + "; ".join(p for p in (f"only the table has {', '.join(extra)}" if extra else "",
                                        f"only this run has {', '.join(missing)}" if missing else "",
                                        "same columns, other order" if not extra and not missing else "") if p)
                + f"): append with the stages its versions ran ({', '.join(previous_stages(Path(table)))}), "
                "or write to a new table or with --mode overwrite")
        for stage in (s for s in stages if isinstance(s, DedupeStage)):  # its state of the published rows must be
            for _, f in history_files(Path(table), stage.name):  # comparable with this run's rows (footers only)
                try:
                    stage.check_history(pq.read_schema(f))
                except ValueError as e:
                    raise ConfigError(f"{stage.name}: {e}") from None
    return stages


def history_files(table: Path, stage_name: str) -> list[tuple[str, Path]]:
    """A dedupe stage's persisted state of the table's published rows, as (run, file) in run order: the files of the
    runs whose shards it holds (a run that failed after writing its state left files that do not count). A run's
    state is a folder of one file per part (<run>.parquet, one file, before 2026-12-07)."""
    folder = publish.sidecar(table, "history") / stage_name
    if not folder.exists() or not publish.table_exists(table):
        return []
    published = publish.published_runs(table)
    files = [(f.stem, f) for f in folder.glob("*.parquet")] + [(f.parent.name, f) for f in folder.glob("*/part-*.parquet")]
    return sorted((run, f) for run, f in files if run in published)


def published_columns(stages: Sequence) -> list[str]:
    """The columns a run with these stages publishes, in order: canonical ones, then each stage's own as the
    engines merge them (replaced columns keep their place), less working columns."""
    names = list(TWEET_SCHEMA.names)
    for stage in stages:
        added = [f.name for f in stage.writes]
        if isinstance(stage, DedupeStage):
            added += [stage.dup_of_column, stage.cluster_size_column]
        names += [n for n in added if n not in names]
    hidden = {ORIGINAL_TEXT} | {c for s in stages for c in s.internal}
    return [n for n in names if n not in hidden]


def previous_stages(table: Path) -> list[str]:
    return [s["name"] for s in publish.latest_metadata(table).get("stages", [])]


def run(
    inputs: Sequence[str],
    table: str | Path,
    config: PipelineConfig,
    *,
    mode: Mode = "append",
    progress: Callable[[int], None] | None = None,
    run_id: str | None = None,
) -> dict:
    """Curate `inputs` into a new version of the Delta table at `table`; returns the run report."""
    c = Curation(inputs, table, config, mode=mode, progress=progress, run_id=run_id)
    c.ingest()
    c.check_rejects()
    c.validate_input()
    for i in range(len(c.stages)):
        c.run_stage(i)
    c.write_shards()
    c.validate()
    c.check_overwrite()
    return c.publish()


def annotate(
    inputs: Sequence[str],
    output: str | Path,
    config: PipelineConfig,
    *,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Run the stages without dropping anything; write one row per parsed input record to `output` (Parquet), and
    the records that could not be parsed, with their reasons, beside it (`rejects_path`)."""
    with tempfile.TemporaryDirectory(prefix="tweetmill-annotate-") as tmp:
        c = Curation(inputs, Path(tmp), config, progress=progress, annotate_only=True, cache_root=Path(tmp))
        c.ingest()
        for i in range(len(c.stages)):
            c.run_stage(i)
        dup_columns = [s.dup_of_column for s in c.stages if isinstance(s, DedupeStage)]
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        writer = None
        for part in c.parts:
            t = _annotate_columns(read_part(part), dup_columns)
            if writer is None:
                writer = pq.ParquetWriter(str(output), t.schema, compression="zstd")
            writer.write_table(t)
        if writer is not None:
            writer.close()
        rejects = rejects_path(output)
        rejects.unlink(missing_ok=True)  # a rerun's output never sits beside an older run's rejects
        if c.ingested.rejected:
            pq.write_table(pq.read_table(c.ingested.rejects), rejects)  # a file, or Spark's folder of them
        report = c.report()
    return {k: report[k] for k in ("input_records", "rejected", "output_records", "stages")} | {
        "output_records": report["input_records"] - report["rejected"]
    } | ({"rejects": str(rejects)} if report["rejected"] else {})


def rejects_path(output: str | Path) -> Path:
    """Where annotate puts the records it could not parse: beside its output (out.parquet -> out.rejects.parquet)."""
    output = Path(output)
    return output.with_name(output.name.removesuffix(".parquet") + ".rejects.parquet")


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
