"""The suite files under expectations/suites/, and which of their expectations apply to a run.

An expectation applies when the stage its meta names ran (or it names none) and every $PARAMETER it uses is
configured (not None). Applicable expectations are grouped by the check frame (meta.batch) they run on.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, Iterable

SUITES_DIR = Path(__file__).resolve().parent / "suites"


@cache
def _load(name: str) -> str:
    return (SUITES_DIR / f"{name}.json").read_text(encoding="utf-8")


def load_suite(name: str) -> dict[str, Any]:
    """The suite file as GX suite JSON (a fresh copy: callers may change it)."""
    return json.loads(_load(name))


def parameters_used(value: Any) -> set[str]:
    if isinstance(value, dict):
        if set(value) == {"$PARAMETER"}:
            return {value["$PARAMETER"]}
        return set().union(*(parameters_used(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(parameters_used(v) for v in value)) if value else set()
    return set()


def columns_used(expectation: dict) -> set[str]:
    kwargs = expectation["kwargs"]
    return {kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs}


def applicable(suite: dict, stages_ran: Iterable[str], parameters: dict[str, Any]) -> dict[str, list[dict]]:
    """batch name -> the suite's expectations that apply, in file order."""
    ran = set(stages_ran)
    out: dict[str, list[dict]] = {}
    for expectation in suite["expectations"]:
        meta = expectation.get("meta", {})
        if meta.get("stage") is not None and meta["stage"] not in ran:
            continue
        used = parameters_used(expectation["kwargs"])
        missing = used - set(parameters)
        if missing:
            raise KeyError(f"suite {suite['name']!r} uses parameters nobody fills: {', '.join(sorted(missing))}")
        if any(parameters[p] is None for p in used):
            continue
        out.setdefault(meta["batch"], []).append(expectation)
    return out
