"""A landing folder: new files arrive, each is curated once. What was taken is recorded beside the table."""

from __future__ import annotations

import json
import os
from pathlib import Path

from transforms.publish import sidecar
from transforms.readers import expand_inputs, fingerprint


class Landing:
    def __init__(self, folder: Path, table: Path):
        self.folder, self.state = folder, sidecar(table, "landing.json")

    def _done(self) -> dict[str, int | str]:
        """(path|fingerprint) -> the version that published the file, or why it was set aside."""
        return json.loads(self.state.read_text()) if self.state.exists() else {}

    def pending(self) -> list[Path]:
        """Files in the landing folder whose (path, fingerprint) has not been published yet, in name order."""
        if not self.folder.exists():
            return []
        done = self._done()
        files = [Path(f) for f in expand_inputs([str(self.folder)])]
        return [f for f in files if f"{f}|{fingerprint(str(f))}" not in done]

    def mark_done(self, files: list[Path], version: int) -> None:
        self._record(files, version)

    def quarantine(self, files: list[Path], reason: str) -> None:
        """Set files aside: no later run takes them again, unless their content changes (a fixed file is new)."""
        self._record(files, f"quarantined: {reason}")

    def _record(self, files: list[Path], outcome: int | str) -> None:
        done = self._done()
        done.update({f"{f}|{fingerprint(str(f))}": outcome for f in files})
        self.state.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state.with_suffix(".tmp")
        tmp.write_text(json.dumps(done, indent=1, sort_keys=True))
        os.replace(tmp, self.state)
