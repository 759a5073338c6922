"""The stage catalogue: name -> "module:Class". One module per stage; imported only when a run uses it."""

from __future__ import annotations

import importlib

from transforms.stages.base import BatchStage, DedupeStage, Stage

CATALOGUE: dict[str, str] = {
    "normalize": "transforms.stages.normalize:Normalize",
    "dedupe_id": "transforms.stages.dedupe_id:DedupeId",
    "dedupe_exact": "transforms.stages.dedupe_exact:DedupeExact",
    "langid": "transforms.stages.langid:LanguageId",
    "dedupe_minhash": "transforms.stages.dedupe_minhash:DedupeMinHash",
    "toxicity": "transforms.stages.toxicity:Toxicity",
    "pii": "transforms.stages.pii:PiiScrub",
    "dedupe_semantic": "transforms.stages.dedupe_semantic:DedupeSemantic",
}

DEFAULT_STAGES = ("normalize", "dedupe_id", "dedupe_exact")


class UnknownStage(ValueError):
    pass


def stage_class(name: str) -> type[Stage]:
    if name not in CATALOGUE:
        raise UnknownStage(f"unknown stage {name!r}; known stages: {', '.join(CATALOGUE)}")
    module, cls = CATALOGUE[name].split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["BatchStage", "DedupeStage", "Stage", "CATALOGUE", "DEFAULT_STAGES", "stage_class", "UnknownStage"]
