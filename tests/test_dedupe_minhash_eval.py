"""The near-duplicate evaluation set (bench/near_dup_eval.py) scored on its held-out split: dedupe_minhash must reach
precision and F1 >= 0.99 and beat plain datasketch MinHashLSH with 5-character shingles on the same rows.
Builds the set from ../shared/data (real tweets; nothing of them is printed), so it skips elsewhere."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from tests.conftest import REPO
from transforms.stages.dedupe_minhash import MinHashConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def evaluation(shared_data):
    spec = importlib.util.spec_from_file_location("near_dup_eval", REPO / "bench" / "near_dup_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, module.build(shared_data)


def test_the_set_covers_languages_variants_and_hard_negatives(evaluation):
    module, sets = evaluation
    held = sets["heldout"]
    kinds = np.array(held.table.column("kind").to_pylist())
    groups = set(held.table.column("group").to_pylist())
    assert {f"xlm_t/{lang}" for lang in module.XLM_T_LANGUAGES} | {"crisislex", "semeval"} <= groups
    assert set(module.VARIANTS) <= {k for kind in set(kinds) for k in kind.split("+")}
    assert (kinds == "distinct").sum() > 2 * held.truth.sum() > 4000


def test_dedupe_minhash_meets_the_bar_on_held_out_rows(evaluation):
    module, sets = evaluation
    held = sets["heldout"]
    ours = module.score(module.predict_stage(held.table, MinHashConfig()), held.truth)
    plain = module.score(module.predict_datasketch(held.table, module.BASELINE_THRESHOLD), held.truth)
    assert ours["precision"] >= 0.99, ours
    assert ours["f1"] >= 0.99, ours
    assert ours["f1"] > plain["f1"], (ours, plain)
