"""Run configuration: one typed model, loaded from YAML/JSON/TOML, validated before any work starts."""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from transforms.schema import TWEET_SCHEMA
from transforms.stages import CATALOGUE, DEFAULT_STAGES, Stage, stage_class


class ConfigError(ValueError):
    """The configuration cannot be used: the CLI prints it on one line and exits 2 (no retry helps)."""


class ReadersConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str | None = None
    csv_columns: dict[str, str] = Field(default_factory=dict)
    piece_bytes: int = Field(256 << 20, gt=0)  # Spark and Beam: a larger JSON-lines or Parquet file is read in pieces


class OutputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shard_max_rows: int = Field(1_000_000, gt=0)
    shard_max_bytes: int = Field(512 << 20, gt=0)  # estimated in-memory bytes per shard
    row_group_rows: int = Field(250_000, gt=0)


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stages: list[str] = Field(default_factory=lambda: list(DEFAULT_STAGES))
    settings: dict[str, dict[str, Any]] = Field(default_factory=dict)  # stage name -> that stage's settings
    # Above this share of unreadable input records a run publishes nothing (exit 3). The default stops only input
    # that is mostly not tweets (the wrong file or format); production configs set it lower (e.g. 0.02).
    max_reject_rate: float = Field(0.5, ge=0.0, le=1.0)
    engine: Literal["polars", "spark", "beam"] = "polars"
    # e.g. spark: {"master": "spark://127.0.0.1:7077"}; beam: {"runner": "FlinkRunner", "pipeline_args": [...]}
    engine_options: dict[str, Any] = Field(default_factory=dict)
    part_rows: int = Field(262_144, gt=0)  # rows per working part: bounds the memory of every step
    readers: ReadersConfig = Field(default_factory=ReadersConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, stages: list[str]) -> list[str]:
        unknown = [s for s in stages if s not in CATALOGUE]
        if unknown:
            raise ValueError(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(CATALOGUE)}")
        if len(set(stages)) != len(stages):
            raise ValueError("a stage is listed twice")
        return stages

    @model_validator(mode="after")
    def _settings_valid(self) -> "PipelineConfig":
        """Everything a run could trip on later, checked now: engine options, every stage's settings (listed or
        not: a typo is a typo), the columns each stage reads, and the model files of the stages that run."""
        for name in self.settings:
            if name not in CATALOGUE:
                raise ValueError(f"settings for unknown stage {name!r}")
        try:
            self.engine_settings()
        except ValidationError as e:
            raise ValueError(f"engine_options.{_first_error(e)}") from None
        for name in self.settings:
            try:
                self.stage_config(name)
            except ValidationError as e:
                raise ValueError(f"settings.{name}.{_first_error(e)}") from None
        available = set(TWEET_SCHEMA.names)
        for name in self.stages:
            stage = stage_class(name)(self.stage_config(name))
            missing_columns = [c for c in stage.reads if c not in available]
            if missing_columns:
                writer = next((s for s in CATALOGUE if missing_columns[0] in
                               {f.name for f in stage_class(s).writes}), None)
                raise ValueError(f"{name} reads {missing_columns[0]!r}, which "
                                 + (f"the {writer} stage writes: list {writer} before {name}" if writer else
                                    "no stage before it writes"))
            available |= {f.name for f in stage.writes}
            try:
                files = stage.resources.model_files
            except FileNotFoundError as e:
                raise ValueError(f"{name}: {e}") from None
            missing = [f for f in files if not Path(f).is_file()]
            if missing:
                raise ValueError(f"{name}: model file not found: {missing[0]}")
        return self

    def engine_settings(self) -> dict[str, Any]:
        """The chosen engine's options, checked. A polars run leaves out Spark's and Beam's (a config may carry
        them for `--engine spark` or `--engine beam`)."""
        from transforms.engines import BeamOptions, PolarsOptions
        from transforms.engines.spark_session import SparkOptions

        if self.engine == "spark":
            return SparkOptions(**self.engine_options).model_dump(exclude_unset=True)
        if self.engine == "beam":
            return BeamOptions(**self.engine_options).model_dump(exclude_unset=True)
        others = set(SparkOptions.model_fields) | set(BeamOptions.model_fields)
        options = {k: v for k, v in self.engine_options.items() if k not in others}
        return PolarsOptions(**options).model_dump(exclude_unset=True)

    def stage_config(self, name: str):
        cls = stage_class(name)
        return cls.Config(**self.settings.get(name, {}))

    def build_stages(self) -> list[Stage]:
        return [stage_class(name)(self.stage_config(name)) for name in self.stages]

    def fingerprint(self) -> str:
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_config(path: str | Path | None = None, **overrides: Any) -> PipelineConfig:
    """Read a config file (YAML, JSON or TOML) and apply overrides (e.g. stages from the command line)."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            raw = p.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot read config {p}: {e.strerror or e}") from None
        try:
            if p.suffix == ".toml":
                data = tomllib.loads(raw)
            elif p.suffix == ".json":
                data = json.loads(raw)
            else:
                data = yaml.safe_load(raw) or {}
        except (ValueError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot parse config {p}: {str(e).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config {p} must be a mapping of settings")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return PipelineConfig(**data)
    except ValidationError as e:
        raise ConfigError(f"invalid config: {_first_error(e)}") from None


def _first_error(e: ValidationError) -> str:
    """A validation error's first problem on one line, as "where: what"."""
    first = e.errors()[0]
    where = ".".join(str(x) for x in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
