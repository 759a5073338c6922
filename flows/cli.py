"""`tweetmill`: the command line. Thin: parses arguments, calls the pipeline, prints a summary.

Errors a user can fix (a missing input, a bad config) are one line on stderr and exit status 2; a run stopped by
its own quality limits exits 3; nothing here prints a traceback for those.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from transforms.readers import InputError

EXIT_USAGE, EXIT_QUALITY = 2, 3
DEMO_CONFIG = Path(__file__).resolve().parents[1] / "infra" / "configs" / "demo.yaml"
console = Console(stderr=True)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=None),
        TextColumn("{task.completed:,.0f} records"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def _config(args):
    from transforms.config import load_config

    overrides = {}
    if getattr(args, "stages", None):
        overrides["stages"] = [s.strip() for s in args.stages.split(",") if s.strip()]
    if getattr(args, "max_reject_rate", None) is not None:
        overrides["max_reject_rate"] = args.max_reject_rate
    if getattr(args, "csv_columns", None):
        overrides["readers"] = {"csv_columns": args.csv_columns}
    if getattr(args, "engine", None):
        overrides["engine"] = args.engine
    if getattr(args, "spark_master", None):
        base = load_config(args.config)
        overrides |= {"engine": "spark", "engine_options": base.engine_options | {"master": args.spark_master}}
    return load_config(args.config, **overrides)


def _check_prefect_api(*, serve: bool = False) -> None:
    """A PREFECT_API_URL that answers, else one line saying so (Prefect would fail with a traceback). Unset, `run`'s
    flow starts a temporary server of its own; `serve` cannot use one: Prefect schedules nothing on it."""
    from prefect.settings import get_current_settings

    from transforms.config import ConfigError

    url = get_current_settings().api.url  # the environment's, else the Prefect profile's
    if not url:
        if serve:
            raise ConfigError("serve needs a Prefect server to schedule its runs: start one with "
                              "infra/prefect/start-server.sh and set PREFECT_API_URL (source infra/prefect/env.sh)")
        return
    import httpx

    try:
        httpx.get(url.rstrip("/") + "/health", timeout=10).raise_for_status()
    except httpx.HTTPError as e:
        raise ConfigError(f"the Prefect API at {url} (PREFECT_API_URL) does not answer ({type(e).__name__}): start "
                          "it with infra/prefect/start-server.sh, or unset PREFECT_API_URL for a temporary one")


def _check_report_path(path: str) -> None:
    """Create the report's folder, or say in one line why it cannot be: the report is written after the publish,
    too late to fail with a traceback."""
    from transforms.publish import PublishError

    report = Path(path)
    if report.is_dir():
        raise PublishError(f"cannot write the report to {path}: it is a folder")
    try:
        report.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise PublishError(f"cannot write the report to {path}: {report.parent} is a file") from None
    except OSError as e:
        raise PublishError(f"cannot write the report to {path}: {e.strerror or e}") from None
    if not os.access(report.parent, os.W_OK) or (report.exists() and not os.access(report, os.W_OK)):
        raise PublishError(f"cannot write the report to {path}: permission denied")


def _print_funnel(report: dict) -> None:
    t = Table(title="tweetmill run", show_lines=False)
    for col in ("stage", "in", "out", "dropped", "reasons"):
        t.add_column(col, justify="right" if col in ("in", "out", "dropped") else "left")
    t.add_row("read", f"{report['input_records']:,}", f"{report['input_records'] - report['rejected']:,}",
              f"{report['rejected']:,}", "rejected (see rejects table)")
    for s in report["stages"]:
        reasons = ", ".join(f"{k}={v:,}" for k, v in s.get("reasons", {}).items())
        t.add_row(s["name"], f"{s['input']:,}", f"{s['output']:,}", f"{s['dropped']:,}", reasons)
    Console().print(t)


class RunFailed(RuntimeError):
    """The flow run ended Failed for a reason it stated (e.g. the reject-rate limit): exit 3 with that reason."""


def _outcome(state):
    if state.is_failed():
        raise RunFailed(state.message or "the curate flow run failed")
    return state.result()


def cmd_run(args) -> int:
    from flows.curate import curate_here
    from transforms import pipeline, publish
    from transforms.readers import expand_inputs

    config = _config(args)
    expand_inputs(args.inputs)  # a missing input or PII key is the user's to fix: say so before any flow starts
    pipeline.preflight(config, args.output, args.mode)
    publish.ensure_folder(Path(args.output))
    if args.report:
        _check_report_path(args.report)
    _check_prefect_api()
    with _progress() as bar:
        task = bar.add_task("curating", total=None)
        pipeline.progress_hook = lambda n: bar.advance(task, n)
        report = _outcome(curate_here(args.inputs, str(args.output), config, mode=args.mode, return_state=True))
    _print_funnel(report)
    if report.get("already_published"):  # the same command ran before: its version was returned, nothing committed
        print(f"version {report['version']} of {report['table']} already holds this run: nothing new was published")
    else:
        print(f"published version {report['version']} of {report['table']}: {report['output_records']:,} rows "
              f"from {report['input_records']:,} input records ({report['rejected']:,} rejected)")
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2, sort_keys=True))
    return 0


def cmd_annotate(args) -> int:
    from transforms import pipeline, publish

    config = _config(args)
    publish.ensure_folder(Path(args.output).parent)
    with _progress() as bar:
        task = bar.add_task("annotating", total=None)
        summary = pipeline.annotate(args.inputs, args.output, config, progress=lambda n: bar.advance(task, n))
    print(f"wrote {summary['output_records']:,} annotated rows to {args.output} "
          f"({summary['rejected']:,} input records rejected)")
    return 0


def cmd_versions(args) -> int:
    from transforms import publish
    from transforms.versions import readable

    ok = readable(Path(args.table))
    rows = [r | {"vacuumed": not ok[r["version"]]} for r in publish.versions(Path(args.table))]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    t = Table(title=f"versions of {args.table}")
    for col in ("version", "time", "operation", "rows", "rejected", "per stage (in -> out)", "files"):
        t.add_column(col)
    for r in rows:
        stages = "; ".join(f"{s['name']} {s['input']:,}->{s['output']:,}" for s in r.get("stages", []))
        t.add_row(str(r["version"]), r["timestamp"], str(r["operation"]), f"{r.get('output_records', '')}",
                  f"{r.get('rejected', '')}", stages, "vacuumed" if r["vacuumed"] else "")
    Console().print(t)
    return 0


def cmd_demo(args) -> int:
    from flows.curate import curate
    from transforms import demo, pipeline

    out = Path(args.output)
    manifest = demo.write_demo_corpus(out / "raw", n_tweets=args.n)
    args.csv_columns = manifest["csv_columns"]
    config = _config(args)
    with _progress() as bar:
        task = bar.add_task("curating demo corpus", total=None)
        pipeline.progress_hook = lambda n: bar.advance(task, n)
        report = _outcome(curate([str(out / "raw")], str(out / "table"), config, mode="overwrite", return_state=True))
    _print_funnel(report)
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    print(f"demo table: {out / 'table'} (version {report['version']}, {report['output_records']:,} rows); "
          f"report: {out / 'report.json'}")
    return 0


def cmd_serve(args) -> int:
    from flows.curate import curate_landing
    from transforms import pipeline

    config = _config(args)
    if not Path(args.landing).is_dir():
        raise InputError(f"landing folder not found: {args.landing}")
    pipeline.preflight(config)
    _check_prefect_api(serve=True)
    schedule = {"interval": args.interval} if args.interval else {"cron": args.cron}
    print(f"serving deployment 'landing' of flow curate-landing ({schedule}); Ctrl-C stops")
    curate_landing.serve(
        name="landing",
        parameters={"landing": str(Path(args.landing).resolve()), "table": str(Path(args.table).resolve()),
                    "config": config.model_dump(mode="json")},
        limit=1,  # one run at a time: two runs must never take the same landing file
        **schedule,
    )
    return 0


def cmd_validate(args) -> int:
    from expectations.gate import validate_version

    config = _config(args) if args.config else None  # by default, the config the version was published with
    result = validate_version(Path(args.table), args.version, config)
    print(result.summary_markdown())
    return 0 if result.success else EXIT_QUALITY


def cmd_diff(args) -> int:
    from transforms.versions import diff

    d = diff(Path(args.table), args.a, args.b)
    print(json.dumps(d, indent=2, default=str))
    return 0


def cmd_vacuum(args) -> int:
    from transforms.versions import vacuum

    removed = vacuum(Path(args.table), args.keep, min_age_s=args.min_age_hours * 3600, dry_run=args.dry_run)
    runs = [r for r in removed if "/run=" in r]
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(removed) - len(runs)} file(s) or folder(s) no kept version needs, and the rejects or drops "
          f"rows of {len(runs)} run log(s) that never published")
    return 0


def cmd_train(args) -> int:
    if args.command == "train-toxicity":
        from transforms.training.toxicity import train_toxicity as train
    elif args.command == "train-toxicity-transformer":
        from transforms.training.toxicity import train_transformer as train
    else:
        from transforms.training.langid import train_langid_supplement as train
    data = Path(args.data)
    if not data.is_dir():
        raise InputError(f"training data folder not found: {data}")
    metrics = train(data, Path(args.out), seed=args.seed)
    print(json.dumps(metrics, indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tweetmill", description="Raw tweet dumps in, clean versioned training data out.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp):
        sp.add_argument("--stages", help="comma-separated stage names, in order (default: from the config)")
        sp.add_argument("--config", help="YAML/JSON/TOML config file")

    def engine(sp):
        sp.add_argument("--engine", choices=("polars", "spark", "beam"), help="default: from the config (polars)")
        sp.add_argument("--spark-master", help="run on Spark with this master (local[N], spark://host:port, yarn...)")

    r = sub.add_parser("run", help="curate inputs into a new version of a Delta table")
    r.add_argument("inputs", nargs="+", help="files, directories, globs or fsspec URIs")
    r.add_argument("--output", "-o", required=True, help="Delta table path")
    r.add_argument("--report", help="also write the run report JSON here")
    r.add_argument("--mode", choices=("append", "overwrite"), default="append")
    r.add_argument("--max-reject-rate", type=float, help="fail (publish nothing) above this share of rejected records")
    common(r)
    engine(r)
    r.set_defaults(func=cmd_run)

    a = sub.add_parser("annotate", help="run the stages, drop nothing, write every row with its stage columns")
    a.add_argument("inputs", nargs="+")
    a.add_argument("--output", "-o", required=True, help="Parquet file to write")
    common(a)
    engine(a)
    a.set_defaults(func=cmd_annotate)

    v = sub.add_parser("versions", help="list a table's versions with their row counts and per-stage counts")
    v.add_argument("table")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=cmd_versions)

    d = sub.add_parser("demo", help="generate the bundled demo corpus and curate it")
    d.add_argument("--output", "-o", default="demo-output")
    d.add_argument("-n", type=int, default=24000, help="number of demo tweets")
    common(d)
    d.set_defaults(config=str(DEMO_CONFIG))
    d.set_defaults(func=cmd_demo)
    val = sub.add_parser("validate", help="re-run the curated data-quality suite on a published version")
    val.add_argument("table")
    val.add_argument("--version", type=int, help="default: the latest")
    common(val)
    val.set_defaults(func=cmd_validate)

    df = sub.add_parser("diff", help="what changed between two versions: rows added/removed, per-language counts")
    df.add_argument("table")
    df.add_argument("a", type=int)
    df.add_argument("b", type=int)
    df.set_defaults(func=cmd_diff)

    vac = sub.add_parser("vacuum", help="delete files that none of the newest K versions needs, and the rejects and "
                                        "drops rows of runs that never published")
    vac.add_argument("table")
    vac.add_argument("--keep", type=_at_least_one, required=True)
    vac.add_argument("--min-age-hours", type=float, default=1.0, help="never delete files younger than this")
    vac.add_argument("--dry-run", action="store_true")
    vac.set_defaults(func=cmd_vacuum)

    models = Path(__file__).resolve().parents[1] / "transforms" / "models"  # package data: beside the code
    for name, what, sub_dir in (
        ("train-toxicity", "the toxicity model (TweetEval train and a MiniLM teacher; ~1 h on 2 cores)", "toxicity"),
        ("train-toxicity-transformer", "the toxicity stage's optional transformer (its fastText model's MiniLM "
                                       "teacher, alone; ~20 min on 2 cores, ~90 MB)", None),
        ("train-langid", "the supplementary language-ID model", "langid"),
    ):
        tr = sub.add_parser(name, help=f"retrain {what}, reproducibly (seeded)")
        tr.add_argument("--data", default=str(Path.cwd().parent / "shared" / "data"), help="folder of the training data sets")
        if sub_dir is None:  # not package data: the user keeps it where settings.toxicity.transformer.path names
            tr.add_argument("--out", required=True, help="folder to write the model and its classifier.json to")
        else:
            tr.add_argument("--out", default=str(models / sub_dir), help="where to write the model, its metrics and card")
        tr.add_argument("--seed", type=int, default=0)
        tr.set_defaults(func=cmd_train)

    s = sub.add_parser("serve", help="serve the scheduled landing-folder deployment from this process")
    s.add_argument("--landing", required=True, help="folder where new tweet files arrive")
    s.add_argument("--table", required=True, help="Delta table the new files are appended to")
    s.add_argument("--cron", default="7 * * * *", help="schedule (default: hourly at minute 7)")
    s.add_argument("--interval", type=float, help="run every N seconds instead of --cron")
    common(s)
    engine(s)
    s.set_defaults(func=cmd_serve)
    return p


def _at_least_one(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"needs a whole number of at least 1, not {value!r}")
    return int(value)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from transforms.config import ConfigError
    from transforms.pipeline import GateFailed, RejectRateExceeded
    from transforms.publish import PublishError
    from transforms.stages.base import SetupError

    try:
        return args.func(args)
    except (InputError, ConfigError, PublishError, SetupError) as e:
        console.print(f"tweetmill: error: {e}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_USAGE
    except (RejectRateExceeded, GateFailed, RunFailed) as e:
        console.print(f"tweetmill: {e}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_QUALITY


if __name__ == "__main__":
    sys.exit(main())
