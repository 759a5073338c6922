"""Resumable steps: each finished step's output is kept under a key of everything it depends on.

Key = hash(previous step's key, this step's name and settings, code version); the ingest key hashes the input
fingerprints and reader settings. A rerun after a crash finds the finished steps' markers and skips them; changing a
stage's settings changes its key and the keys after it, so only that stage and the later ones run again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Callable, TypeVar

from transforms.engines.common import IngestResult, StepResult

MARKER = "_SUCCESS.json"
T = TypeVar("T", IngestResult, StepResult)


def step_key(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _to_json(result: IngestResult | StepResult) -> dict:
    if isinstance(result, IngestResult):
        return {"kind": "ingest", "parts": [str(p) for p in result.parts], "records": result.records,
                "rejected": result.rejected, "rejects": str(result.rejects)}
    return {"kind": "stage", "parts": [str(p) for p in result.parts], "rows_in": result.rows_in,
            "rows_out": result.rows_out, "drop_reasons": dict(result.drop_reasons),
            "drops": str(result.drops) if result.drops else None}


def _from_json(data: dict) -> IngestResult | StepResult:
    parts = [Path(p) for p in data["parts"]]
    if data["kind"] == "ingest":
        return IngestResult(parts, data["records"], data["rejected"], Path(data["rejects"]))
    return StepResult(parts, data["rows_in"], data["rows_out"], Counter(data["drop_reasons"]),
                      Path(data["drops"]) if data["drops"] else None)


class StepCache:
    """A folder per step key; a step counts as finished only once its marker is written (atomically, last)."""

    def __init__(self, root: Path):
        self.root = root

    def folder(self, key: str) -> Path:
        return self.root / key

    def load(self, key: str) -> IngestResult | StepResult | None:
        marker = self.folder(key) / MARKER
        if not marker.exists():
            return None
        result = _from_json(json.loads(marker.read_text()))
        if not all(p.exists() for p in result.parts):
            return None
        return result

    def run(self, key: str, compute: Callable[[Path], T]) -> tuple[T, bool]:
        """(result, reused): the stored result when the step already finished, else compute it into its folder."""
        found = self.load(key)
        if found is not None:
            return found, True
        folder = self.folder(key)
        shutil.rmtree(folder, ignore_errors=True)  # a half-written step from a crashed run
        folder.mkdir(parents=True)
        result = compute(folder)
        tmp = folder / (MARKER + ".tmp")
        tmp.write_text(json.dumps(_to_json(result)))
        os.replace(tmp, folder / MARKER)
        return result, False

    def forget(self, keys: set[str]) -> None:
        """Delete the steps in `keys` (those of a published run that the next one did not reuse)."""
        for key in keys:
            shutil.rmtree(self.folder(key), ignore_errors=True)
