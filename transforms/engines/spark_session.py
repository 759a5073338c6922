"""The Spark session the Spark engine runs in: tweetmill prepares everything its Python workers need, a user only
names the master (and, if they like, memory, shuffle partitions and any other Spark setting).

One SparkContext lives per process (Spark's rule); a run that names another master stops the current one first.
Settings that results depend on are fixed here (UTC session time, Arrow transfer, no speculative task copies);
tunables come from infra/spark/spark-defaults.conf (used as SPARK_CONF_DIR when none is set) and the options.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import weakref
import zipfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

import transforms

CONF_DIR = Path(transforms.__file__).resolve().parents[1] / "infra" / "spark"
THIS_HOST = ("127.0.0.1", "localhost")
EXISTING = "existing"  # use the SparkSession the host process already runs (Databricks, a notebook)

# What tweetmill's results rely on; a user's `conf` cannot change these.
REQUIRED = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.parquet.compression.codec": "lz4_raw",  # Spark's own working data (ranks, edges, verdicts)
    "spark.speculation": "false",  # tasks write their files themselves: one attempt per task at a time
}


class SparkOptions(BaseModel):
    """`engine_options` of a Spark run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    master: str = "local[*]"  # local[N], spark://host:port, yarn, k8s://https://..., or "existing"
    executor_memory: str | None = None  # e.g. "4g"; in local mode the one JVM's heap
    shuffle_partitions: int | None = Field(None, gt=0)
    conf: dict[str, str | bool | int | float] = Field(default_factory=dict)  # any other Spark setting
    # Zip the `transforms` and `expectations` packages and add them to every executor's path. Default: for masters
    # on other hosts; executors on this host use this very venv (and model files found relative to the package).
    ship_code: bool | None = None
    # Driver environment variables handed to the Python workers (besides every TWEETMILL_* one), e.g. a stage's
    # key variable with another name. They travel inside the task description, never in Spark's settings or UI.
    forward_env: tuple[str, ...] = ()
    # GPUs each task of a GPU stage asks for where the executors have GPUs (spark.executor.resource.gpu.amount): 1,
    # one task per GPU; 0.5, two tasks share one. Other stages' tasks ask for none.
    task_gpus: float = Field(1.0, gt=0, le=1)

    @property
    def local(self) -> bool:
        return self.master.startswith("local")

    def unreachable_master(self, timeout_s: float = 5.0) -> str | None:
        """Why a standalone master (spark://host:port[,host:port...]) cannot be reached, or None. Spark itself would
        retry for over a minute and then fail with a Java stack trace."""
        if not self.master.startswith("spark://"):
            return None
        reasons = []
        for address in self.master.removeprefix("spark://").split(","):
            host, _, port = address.rpartition(":")
            try:
                socket.create_connection((host, int(port)), timeout=timeout_s).close()
                return None
            except (OSError, ValueError) as e:
                reasons.append(f"{address}: {getattr(e, 'strerror', None) or e}")
        return "; ".join(reasons)

    @property
    def on_this_host(self) -> bool:
        """local[N], or a standalone master on 127.0.0.1 whose workers share this machine (and this venv)."""
        return self.local or any(self.master.startswith(f"spark://{h}:") for h in THIS_HOST)


def _prepare_environment(options: SparkOptions) -> None:
    """Environment read when the JVM and the Python workers start: this venv's Python, loopback for local runs."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if options.on_this_host:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    if CONF_DIR.is_dir():
        os.environ.setdefault("SPARK_CONF_DIR", str(CONF_DIR))


def _settings(options: SparkOptions) -> dict[str, str]:
    settings: dict[str, str] = {}
    if options.executor_memory:
        key = "spark.driver.memory" if options.local else "spark.executor.memory"
        settings[key] = options.executor_memory
    if options.shuffle_partitions:
        settings["spark.sql.shuffle.partitions"] = str(options.shuffle_partitions)
    if options.on_this_host:
        settings["spark.driver.host"] = "127.0.0.1"
        settings["spark.driver.bindAddress"] = "127.0.0.1"
    settings.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in options.conf.items()})
    settings.update(REQUIRED)
    return settings


def code_archive(folder: Path) -> Path:
    """The running `transforms` and `expectations` packages (the stages, and the gate's slices, run in executors) as
    folder/tweetmill.zip, for executors (source and data, no bytecode)."""
    import expectations

    path = folder / "tweetmill.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for package in (transforms, expectations):
            root = Path(package.__file__).resolve().parent
            for f in sorted(root.rglob("*")):
                if f.is_file() and "__pycache__" not in f.parts:
                    zf.write(f, f.relative_to(root.parent).as_posix())
    return path


_shipped: weakref.WeakSet = weakref.WeakSet()  # the SparkContexts that already have the code


def session(options: SparkOptions):
    """The SparkSession for `options.master`: the running one when it has that master (or when the master is
    "existing": a session the host started, e.g. on Databricks), else a new one."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    active = SparkContext._active_spark_context
    if options.master == EXISTING and active is None:
        raise RuntimeError('Spark master "existing" needs a running SparkSession (e.g. a Databricks notebook or job)')
    if options.master in (EXISTING, getattr(active, "master", None)):
        spark = SparkSession.builder.getOrCreate()
        settings = REQUIRED if options.master == EXISTING else _settings(options)
        for key, value in settings.items():  # a running session: only runtime SQL settings can still change
            if key.startswith("spark.sql.") and spark.conf.isModifiable(key):
                spark.conf.set(key, value)
    else:
        if active is not None:
            active.stop()
        _prepare_environment(options)
        builder = SparkSession.builder.master(options.master).appName("tweetmill")
        for key, value in _settings(options).items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
    sc = spark.sparkContext
    ship = options.ship_code if options.ship_code is not None else not options.on_this_host
    if ship and sc not in _shipped:
        sc.addPyFile(str(code_archive(Path(tempfile.mkdtemp(prefix="tweetmill-code-")))))
        _shipped.add(sc)
    for name, value in os.environ.items():
        if name.startswith("TWEETMILL_") or name in options.forward_env:
            sc.environment[name] = value
    return spark


def stop() -> None:
    """Stop the running SparkContext, if any (tests and the CLI's end of process)."""
    from pyspark import SparkContext

    if SparkContext._active_spark_context is not None:
        SparkContext._active_spark_context.stop()
