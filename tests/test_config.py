"""The run configuration refuses, before any work, what a run would otherwise trip on halfway through."""

import pytest

from transforms.config import ConfigError, load_config


@pytest.mark.parametrize("settings, message", [
    # A stage's settings are checked whether or not the stage is listed: a typo is found now, not when it is.
    ({"stages": ["normalize"], "settings": {"langid": {"min_score": 2}}},
     "settings.langid.min_score: Input should be less than or equal to 1"),
    ({"settings": {"toxicity": {"acton": "drop"}}}, "settings.toxicity.acton: Extra inputs are not permitted"),
    ({"engine_options": {"threadz": 2}}, "engine_options.threadz: Extra inputs are not permitted"),
    ({"engine_options": {"threads": 0}}, "engine_options.threads: Input should be greater than 0"),
    ({"engine_options": {"staging_compression": "gzip"}}, "engine_options.staging_compression: Input should be 'lz4' or 'zstd'"),
    ({"engine": "beam", "engine_options": {"running_mode": "threads"}},
     "engine_options.running_mode: Input should be 'multi_processing', 'multi_threading' or 'in_memory'"),
    ({"engine": "beam", "engine_options": {"master": "local[2]"}}, "engine_options.master: Extra inputs are not permitted"),
    ({"stages": ["dedupe_exact"]},
     "dedupe_exact reads 'dedupe_key', which the normalize stage writes: list normalize before dedupe_exact"),
    ({"stages": ["dedupe_minhash", "normalize"]},
     "dedupe_minhash reads 'dedupe_key', which the normalize stage writes: list normalize before dedupe_minhash"),
])
def test_what_a_run_would_trip_on_is_refused_with_where_it_is(settings, message):
    with pytest.raises(ConfigError) as caught:
        load_config(**settings)
    assert str(caught.value) == f"invalid config: {message}"


def test_engine_options_are_the_chosen_engines():
    """A config may carry Spark's or Beam's options for `--engine spark` or `--engine beam`; a polars run leaves
    them out."""
    both = {"master": "local[2]", "threads": 2}
    with pytest.raises(ConfigError, match="engine_options.threads: Extra inputs are not permitted"):
        load_config(engine="spark", engine_options=both)
    assert load_config(engine_options={"master": "local[2]", "threads": 2}).engine_settings() == {"threads": 2}
    assert load_config(engine="spark", engine_options={"master": "local[2]"}).engine_settings() == {"master": "local[2]"}
    beam = {"runner": "FlinkRunner", "pipeline_args": ["--flink_master=host:8081"]}
    assert load_config(engine_options=beam | {"threads": 2}).engine_settings() == {"threads": 2}
    assert load_config(engine="beam", engine_options=beam).engine_settings() == {
        "runner": "FlinkRunner", "pipeline_args": ("--flink_master=host:8081",)}


def test_the_full_pipeline_and_each_stage_after_normalize_are_valid():
    full = ["normalize", "dedupe_id", "dedupe_exact", "langid", "dedupe_minhash", "toxicity", "pii"]
    assert load_config(stages=full).stages == full
    for stage in full[1:]:
        assert load_config(stages=["normalize", stage]).stages == ["normalize", stage]


@pytest.mark.parametrize("name, options, where", [("spark", {"mastr": "local[2]"}, "mastr"),
                                                  ("beam", {"running_mode": "fast"}, "running_mode")])
def test_an_engine_made_directly_refuses_bad_options_in_one_line(name, options, where):
    from transforms.engines import make_engine

    with pytest.raises(ConfigError, match=f"^invalid engine_options for {name}: {where}: "):
        make_engine(name, part_rows=100, **options)
