"""Great Expectations' part of the gate: an in-memory context, and the validation of one check frame. The gate's
driver and an engine's workers (expectations/tasks.py) validate frames the same way, so their results merge."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pandas as pd

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

EXAMPLES = 5
# The column that names a row of each check frame in failures (ids for tweets, never their text).
INDEX_COLUMNS = {"rows": "id", "schema": "name", "shards": "shard", "funnel": "step"}
SOURCE = "tweetmill"


def context(docs_dir: Path | None = None):
    """An in-memory GX context: no project folder, no analytics, no progress bars, and Data Docs (if wanted) only
    in `docs_dir`."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    sites = {}
    if docs_dir is not None:
        sites["gate"] = {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(Path(docs_dir).absolute())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites=sites,
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    gx_context = gx.get_context(project_config=config, mode="ephemeral")
    gx_context.data_sources.add_pandas(SOURCE)
    return gx_context


def definition(gx_context, suite: str, name: str, expectations: list[dict]):
    """The validation `suite.batch[.part]` of `expectations` on a dataframe asset, added to `gx_context`."""
    import great_expectations as gx
    from great_expectations.core.expectation_suite import ExpectationSuite

    gx_suite = ExpectationSuite(name=name, expectations=expectations)
    if len(gx_suite.expectations) != len(expectations):
        raise ValueError(f"suite {name}: GX rejected some expectations (see its log)")
    asset = name.removeprefix(f"{suite}.")
    source = gx_context.data_sources.get(SOURCE)
    return gx_context.validation_definitions.add(gx.ValidationDefinition(
        name=name,
        data=source.add_dataframe_asset(asset).add_batch_definition_whole_dataframe(asset),
        suite=gx_context.suites.add(gx_suite),
    ))


def validate(gx_definition, batch: str, frame: pd.DataFrame, params: dict) -> dict:
    """One frame's validation result, as JSON: counts, and up to EXAMPLES examples with the ids of their rows."""
    index = INDEX_COLUMNS[batch]
    return gx_definition.run(
        batch_parameters={"dataframe": frame},
        expectation_parameters=params,
        result_format={
            "result_format": "SUMMARY",
            "partial_unexpected_count": EXAMPLES,
            "unexpected_index_column_names": [index] if index in frame.columns else [],
        },
    ).to_json_dict()


def validate_apart(suite: str, name: str, expectations: list[dict], batch: str, frame: pd.DataFrame,
                   params: dict) -> dict:
    """`validate` in a context of its own (no Data Docs): how a worker checks its slice of a run."""
    try:
        return validate(definition(context(), suite, name, expectations), batch, frame, params)
    finally:
        # The context reaches the frame through reference cycles: freed now, a worker that checks slice after
        # slice holds one at a time (without this, 8 slices of 1M rows grew a process from 0.9 to 2.3 GB).
        gc.collect()
