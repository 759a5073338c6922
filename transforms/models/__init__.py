"""The models tweetmill ships as package data (the wheel carries this folder).

A stage's configuration names a shipped model "packaged", never by its absolute path: configurations are pickled to
Spark executors (and any other remote worker), whose install of tweetmill lives elsewhere than the driver's. The name is turned
into a file where the model is loaded.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import importlib.resources
import shutil
import tempfile
from pathlib import Path
from typing import Literal

PACKAGED = "packaged"
Packaged = Literal["packaged"]


def resolve_model(configured: Path | str, packaged: str) -> Path:
    """The file a configured model path means: for "packaged", the shipped model `packaged` (a path relative to this
    folder, "toxicity/toxicity.ftz"); else the configured path itself."""
    if configured != PACKAGED:
        return Path(configured)
    installed = Path(__file__).resolve().parent / packaged
    return installed if installed.is_file() else _extracted(packaged)


def sha256_file(path: Path | str) -> str:
    """A model or data file's SHA-256 (hex), read in blocks: how model cards and run reports name a model exactly."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.cache
def _extracted(packaged: str) -> Path:
    """The shipped model copied out of a zip import (Spark's addPyFile ships the package zipped), once per process:
    fastText reads real files only. The files beside it (metrics.json) come along."""
    folder, _, name = packaged.rpartition("/")
    source = importlib.resources.files(__name__).joinpath(folder)
    if not source.joinpath(name).is_file():
        raise FileNotFoundError(f"the packaged model {packaged} is not in this install of tweetmill ({source})")
    target = Path(tempfile.mkdtemp(prefix="tweetmill-models-"))
    atexit.register(shutil.rmtree, target, True)
    (target / folder).mkdir(parents=True)
    for item in source.iterdir():
        if item.is_file():
            (target / folder / item.name).write_bytes(item.read_bytes())
    return target / packaged
