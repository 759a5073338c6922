"""Suite parameters: every threshold the suites check comes from the run's config, through this one module.

The suites hold `{"$PARAMETER": name}` placeholders; `suite_parameters` fills them from PipelineConfig (a stage's
own Config class supplies its defaults) and from the run reports. A parameter that is None means "not configured"
(e.g. langid with `languages: null` accepts every language): expectations that use it are left out.
"""

from __future__ import annotations

from typing import Any, Iterable

import pyarrow as pa

from transforms.config import PipelineConfig
from transforms.schema import TWEET_SCHEMA
from transforms.stages import stage_class

# Defaults for stages whose module is not in the repo yet (their Config class cannot be read). Once the stage
# module exists its Config wins: delete its entry then.
# Gate settings that belong to no stage. Long posts (X "note tweets") reach 25,000 characters.
MAX_TEXT_CHARS = 25_000


def stage_settings(config: PipelineConfig, name: str) -> dict[str, Any]:
    """The effective settings of a stage: its Config class applied to config.settings[name]."""
    given = config.settings.get(name, {})
    return stage_class(name).Config(**given).model_dump(mode="json")


def toxicity_threshold(settings: dict[str, Any]) -> float:
    """The configured threshold, else the one tuned at training time (stored beside the model)."""
    if settings.get("threshold") is not None:
        return float(settings["threshold"])
    from transforms.stages.toxicity import ToxicityConfig, tuned_threshold

    return float(tuned_threshold(ToxicityConfig.model_validate(settings).model_file()))


def type_name(t: pa.DataType) -> str:
    """A logical type name: large and small variants of strings and lists read the same (engines differ)."""
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return f"list<{type_name(t.value_type)}>"
    return str(t)


def field_names(schema: pa.Schema) -> list[str]:
    """"name: type" strings, the form the suites' schema expectations compare."""
    return [f"{f.name}: {type_name(f.type)}" for f in schema]


def stages_run(reports: Iterable[dict]) -> set[str]:
    return {s["name"] for r in reports for s in r.get("stages", [])}


def suite_parameters(config: PipelineConfig, reports: list[dict]) -> dict[str, Any]:
    """Values for every $PARAMETER of the curated suite, for the runs whose reports are given."""
    ran = stages_run(reports)
    normalize = stage_settings(config, "normalize") if "normalize" in ran else {}
    langid = stage_settings(config, "langid")
    toxicity = stage_settings(config, "toxicity") if "toxicity" in ran else {}
    pii = stage_settings(config, "pii")
    out = config.output
    return {
        "canonical_fields": field_names(TWEET_SCHEMA),
        "output_records": sum(r["output_records"] for r in reports),
        # normalize drops empty texts (unless drop_empty is off); without it an empty text is no error.
        "min_text_chars": 1 if normalize.get("drop_empty") else 0,
        "max_text_chars": MAX_TEXT_CHARS,
        "languages": sorted(langid["languages"]) if langid.get("languages") is not None else None,
        "lang_min_score": float(langid["min_score"]),
        "lang_thresholds": {k: float(v) for k, v in (langid.get("thresholds") or {}).items()},
        "toxicity_threshold": toxicity_threshold(toxicity) if "toxicity" in ran else None,
        "phone_regions": list(pii["phone_regions"]),
        "shard_max_rows": out.shard_max_rows,
        "shard_max_bytes": out.shard_max_bytes,
        "row_group_rows": out.row_group_rows,
    }
