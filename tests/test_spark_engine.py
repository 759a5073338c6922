"""Spark's own parts: its distributed grouping equals transforms.dedupe's, its shard plan follows the polars
writer's bounds, and the code archive it ships to executors imports on its own. (Spark against polars, end to end:
tests/test_engines.py.)"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from transforms.dedupe import find_representatives, preference_rank
from transforms.engines import spark_session
from transforms.engines.part_tasks import plan_shards
from transforms.engines.polars import PolarsEngine
from transforms.engines.staging import read_part, write_part

LOCAL = {"master": "local[2]", "shuffle_partitions": 4}


@pytest.fixture(scope="module")
def spark_local():
    """One local[2] SparkContext for the module."""
    yield LOCAL
    spark_session.stop()


def _graph(seed: int):
    """Rows joined through chains (many rounds), a big star, and overlapping random keys in four bands;
    created_at and ids repeat, so ties fall back to input position."""
    rng = np.random.default_rng(seed)
    rows, bands, keys = [], [], []
    for i in range(59):  # chain 0-1-2-...-59, one bucket per link
        rows += [i, i + 1]
        bands += [0, 0]
        keys += [1000 + i, 1000 + i]
    rows += list(range(60, 100))  # one star
    bands += [1] * 40
    keys += [5000] * 40
    for band in range(4):  # rows 100..379 overlap at random; 380..399 have no keys
        rows += list(range(100, 380))
        bands += [band] * 280
        keys += list(rng.integers(0, 70, 280) + 10_000 * (band + 2))
    n = 400
    ts = rng.integers(0, 40, n)
    idk = rng.integers(0, 25, n)
    return np.array(rows), np.array(bands, dtype=np.int32), np.array(keys, dtype=np.int64), ts, idk, n


@pytest.mark.slow
@pytest.mark.parametrize("verified", [False, True])
def test_grouping_equals_find_representatives(spark_local, tmp_path, verified):
    from pyspark.sql import functions as F

    from transforms.engines import spark_graph

    spark = spark_session.session(spark_session.SparkOptions(**spark_local))
    rows, bands, keys, ts, idk, n = _graph(seed=3)
    rank = preference_rank(ts.astype(np.int64), idk.astype(np.uint64))  # Spark labels rows by this rank
    check = lambda a, b: (a + 2 * b) % 5 != 0  # noqa: E731 - the same rule on both sides, over ranks
    verify = (lambda a, b: check(rank[a], rank[b])) if verified else None
    expected = find_representatives(rows, bands, keys, rank, verify)

    key_df = spark.createDataFrame(pa.table({"rank": rank[rows], "band": bands, "key": keys}))
    spark_verify = (lambda edges: edges.where(check(F.col("src"), F.col("dst")))) if verified else None
    groups = spark_graph.representatives(key_df, tmp_path / "work", 3, spark_verify).toArrow()

    rep_of_rank = np.arange(n)
    rep_of_rank[groups.column("node").to_numpy()] = groups.column("rep").to_numpy()
    assert np.array_equal(rep_of_rank[rank], rank[expected])
    sizes = np.bincount(expected, minlength=n)[expected]
    row_of_rank = np.argsort(rank)
    listed = row_of_rank[groups.column("node").to_numpy()]
    assert np.array_equal(groups.column("size").to_numpy(), sizes[listed])
    assert set(listed) == set(np.flatnonzero(sizes > 1))  # every row of a group of two or more, and no other
    assert (expected[:60] == expected[0]).all() == (not verified)  # the chain is one group unless verify cut it


def test_shard_plan_matches_the_polars_writer(tmp_path):
    """Shard boundaries follow the polars engine's bounds (rows, and estimated bytes per part)."""
    table = pa.table({"id": [str(i) for i in range(1000)], "text": ["x" * (i % 50) for i in range(1000)]})
    parts = []
    for k, (start, length) in enumerate([(0, 300), (300, 450), (750, 250)]):
        parts.append(tmp_path / f"p{k}.arrow")
        write_part(table.slice(start, length), parts[-1])
    measures = [(read_part(p).num_rows, read_part(p).nbytes) for p in parts]
    for max_rows, max_bytes in ((400, 1 << 30), (10_000, 9_000), (260, 12_000)):
        shards = PolarsEngine().write_shards(parts, tmp_path / f"s{max_rows}", lambda i: f"{i}.parquet",
                                             lambda s: s.names, max_rows, max_bytes, 100)
        plan = plan_shards(measures, max_rows, max_bytes)
        assert [sum(length for _, _, length in shard) for shard in plan] == [
            pq.read_metadata(s).num_rows for s in shards
        ]


ZIPPED_STAGES = """
import json
import sys
sys.path.insert(0, sys.argv[1])
import pyarrow as pa
import expectations.tasks as gate_tasks
import transforms.engines.part_tasks as tasks
from transforms.stages.langid import LanguageId, LanguageIdConfig
from transforms.stages.toxicity import Toxicity, ToxicityConfig

print(tasks.__file__, gate_tasks.__file__)
texts = pa.table({"text": ["shut up you stupid idiot, nobody cares what you think"]})
for stage in (LanguageId(LanguageIdConfig()), Toxicity(ToxicityConfig())):
    print(json.dumps(stage.annotate(texts).to_pylist()[0]))
"""


def test_code_archive_imports_on_its_own_with_its_models(tmp_path):
    """What ship_code hands executors: the transforms and expectations packages, importable from the zip alone, and
    the packaged models read out of it (fastText needs real files)."""
    archive = spark_session.code_archive(tmp_path)
    out = subprocess.run([sys.executable, "-c", ZIPPED_STAGES, str(archive)], capture_output=True, text=True,
                         check=True, cwd=tmp_path)
    where, lang, toxicity = out.stdout.strip().splitlines()
    assert all(path.startswith(str(archive)) for path in where.split())
    assert json.loads(lang)["lang"] == "en" and json.loads(toxicity)["is_toxic"] is True
