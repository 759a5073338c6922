"""dedupe_semantic on real tweets (the XLM-T English sample bundled with the demo) with planted rewordings."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from pydantic import ValidationError
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from transforms import pipeline, publish, semantic
from transforms.config import load_config
from transforms.dedupe import find_representatives, preference_rank
from transforms.stages.base import SetupError
from transforms.stages.dedupe_semantic import DedupeSemantic, SemanticConfig
from transforms.stages.normalize import Normalize

REPO = Path(__file__).resolve().parents[1]

# (earlier, later): the later one says the same in other words, and should go.
REWORDED = [
    ("The hurricane destroyed our whole town last night", "Last night the hurricane destroyed our entire town"),
    ("Thank you so much for all the birthday wishes everyone!", "Thanks so much everyone for all the birthday wishes!!"),
    ("Flights out of Boston are cancelled until Monday", "All flights out of Boston cancelled until Monday"),
]


def english_tweets(n: int) -> list[str]:
    with gzip.open(REPO / "transforms/demo_data/xlm_t_sample.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [r["text"] for r in rows if r["lang"] == "en"][:n]


def tweets(texts: list[str], lang: list[str] | None = None) -> pa.Table:
    n = len(texts)
    table = pa.table({
        "id": pa.array([str(1000 + i) for i in range(n)]),
        "text": pa.array(texts),
        "created_at": pa.array(np.datetime64("2020-01-01", "us") + np.arange(n).astype("timedelta64[s]"),
                               pa.timestamp("us", tz="UTC")),
    })
    table = table.set_column(1, "text", Normalize().annotate(table).column("text"))
    return table.append_column("lang", pa.array(lang, pa.string())) if lang is not None else table


def embedded(stage: DedupeSemantic, table: pa.Table) -> pa.Table:
    return table.append_column("semantic_vector", stage.annotate(table).column("semantic_vector"))


def dropped_by(stage: DedupeSemantic, table: pa.Table) -> np.ndarray:
    """Representatives as an engine finds them from the stage's column, keys, payload and pair check."""
    table = embedded(stage, table)
    keys, payload = stage.keys(table), stage.payload(table)
    rank = preference_rank(table.column("created_at").cast(pa.int64()).to_numpy(),
                           table.column("id").to_numpy(zero_copy_only=False).astype(np.uint64))
    return find_representatives(keys.column("row").to_numpy(), keys.column("band").to_numpy(),
                                keys.column("key").to_numpy(), rank,
                                lambda a, b: stage.verify(payload[a], payload[b]))


@pytest.fixture(scope="module")
def stage():
    s = DedupeSemantic()
    s.ensure_setup()
    return s


@pytest.fixture(scope="module")
def corpus():
    return tweets([e for e, _ in REWORDED] + english_tweets(150) + [later for _, later in REWORDED])


def test_a_rows_embedding_does_not_depend_on_the_rows_beside_it():
    texts = english_tweets(40)
    encoder = semantic.Encoder()
    alone = np.concatenate([encoder.embed([t]) for t in texts[:8]])
    together = encoder.embed(texts)
    reversed_ = encoder.embed(texts[::-1])[::-1]
    small_batches = semantic.Encoder(batch_size=3).embed(texts)
    assert together.tobytes() == reversed_.tobytes() == small_batches.tobytes()
    assert alone.tobytes() == together[:8].tobytes()
    norms = np.linalg.norm(together.astype(np.float64), axis=1)
    assert np.all(np.abs(norms - semantic.SCALE) < 2)  # unit vectors, scaled and rounded


def test_reworded_tweets_are_dropped_for_their_earlier_version(stage, corpus):
    rep = dropped_by(stage, corpus)
    ids = corpus.column("id").to_pylist()
    texts = corpus.column("text").to_pylist()
    for earlier, later in REWORDED:
        assert ids[rep[texts.index(later)]] == ids[texts.index(earlier)]
        assert rep[texts.index(earlier)] == texts.index(earlier)


def test_groups_are_exactly_the_pairs_above_the_threshold(stage, corpus):
    """On a small corpus the LSH misses no pair: the groups equal those of every pair's cosine, checked one by one."""
    vectors, present = semantic.vectors_of(stage.annotate(corpus).column("semantic_vector"))
    n = corpus.num_rows
    a, b = np.triu_indices(n, 1)
    close = present[a] & present[b] & (semantic.cosine(vectors[a], vectors[b]) >= stage.config.threshold)
    _, labels = connected_components(coo_matrix((np.ones(close.sum()), (a[close], b[close])), shape=(n, n)))
    rep = dropped_by(stage, corpus)
    assert np.array_equal(labels[:, None] == labels[None, :], rep[:, None] == rep[None, :])
    assert 0 < (rep != np.arange(n)).sum() < 20  # the planted rewordings and hardly anything else


def test_tweets_without_words_or_in_other_languages_are_never_grouped(stage):
    texts = ["@someone 😂😂", "😂😂😂 https://t.co/abc", "@other 😂", "real words here", "real words here!",
             "Muchas gracias a todos", "Muchas gracias a todos!!"]
    table = embedded(stage, tweets(texts, ["en", "en", "en", "en", None, "es", "es"]))
    assert table.column("semantic_vector").is_valid().to_pylist() == [False, False, False, True, True, False, False]
    assert set(stage.keys(table).column("row").to_pylist()) == {3, 4}
    everyone = DedupeSemantic(SemanticConfig(languages=None))
    assert set(everyone.keys(embedded(everyone, tweets(texts))).column("row").to_pylist()) == {3, 4, 5, 6}


def test_history_dedupes_a_later_run_against_published_rows(stage, corpus):
    """The persisted vectors give the same keys and payload as the rows had, and refuse another encoding."""
    table = embedded(stage, corpus)
    state = stage.history(table)
    vectors, present = semantic.vectors_of(table.column("semantic_vector"))
    assert state.num_rows == present.sum() and state.column("id").to_pylist() == corpus.column("id").filter(
        pa.array(present)).to_pylist()
    assert np.array_equal(stage.history_payload(state), vectors[present])
    assert stage.history_keys(state).column("key").to_pylist() == stage.keys(table).column("key").to_pylist()
    with pytest.raises(ValueError, match="append with the settings and encoder the table was made with"):
        DedupeSemantic(SemanticConfig(max_length=64)).history_payload(state)


def test_pii_scrubbed_text_is_what_gets_embedded(stage):
    """After the pii stage `text` is scrubbed: the vectors (and so the history) never saw the address."""
    plain = stage.annotate(tweets(["write to me at <EMAIL> about the flood"])).column("semantic_vector")
    assert semantic.folded_text(pa.array(["Write to me at <EMAIL> about the flood @bob https://t.co/x"])
                                ).to_pylist() == ["write to me at email about the flood"]
    again = stage.annotate(tweets(["Write to me at <EMAIL> about the flood @bob https://t.co/x"]))
    assert again.column("semantic_vector").equals(plain)


def test_cosine_is_integer_exact():
    rng = np.random.default_rng(0)
    a = rng.integers(-127, 128, (50, semantic.DIM), dtype=np.int8)
    b = rng.integers(-127, 128, (50, semantic.DIM), dtype=np.int8)
    fa, fb = a.astype(np.float64), b.astype(np.float64)
    want = (fa * fb).sum(1) / np.sqrt((fa * fa).sum(1) * (fb * fb).sum(1))
    assert np.allclose(semantic.cosine(a, b), want, rtol=0, atol=1e-12)
    assert np.allclose(semantic.cosine(a, a), 1.0)
    assert semantic.cosine(np.zeros((1, semantic.DIM), np.int8), a[:1])[0] == 0.0


def test_signatures_are_exact_whatever_the_chunking():
    rng = np.random.default_rng(1)
    vectors = rng.integers(-127, 128, (300, semantic.DIM), dtype=np.int8)
    planes = semantic.hyperplanes(64, seed=3)
    exact = (vectors.astype(np.int64) @ planes.astype(np.int64)) > 0
    assert np.array_equal(semantic.signatures(vectors, planes, chunk=7), exact)
    assert np.array_equal(semantic.hyperplanes(64, seed=3), planes)


def test_default_bands_find_pairs_at_the_threshold():
    lsh = SemanticConfig().lsh
    assert lsh.candidate_probability(SemanticConfig().threshold) > 0.98
    assert lsh.candidate_probability(0.5) < 0.05


@pytest.mark.parametrize("bad", [{"threshold": 1.0}, {"device": "tpu"}, {"rows": 65}, {"batch_size": 0}])
def test_config_refuses_impossible_settings(bad):
    with pytest.raises(ValidationError):
        SemanticConfig(**bad)


def _jsonl(path: Path, texts: list[str], first_id: int) -> Path:
    lines = [json.dumps({"id": str(first_id + i), "text": t, "author_id": "7",
                         "created_at": f"2020-01-0{1 + first_id // 1000}T00:00:{i:02d}.000Z"}) for i, t in enumerate(texts)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_an_append_drops_rewordings_of_published_tweets(tmp_path):
    """The published rows' vectors are kept beside the table, never in it; a later run's rewordings of them go."""
    config = load_config(stages=["normalize", "dedupe_exact", "dedupe_semantic"])
    table = tmp_path / "table"
    first = pipeline.run([str(_jsonl(tmp_path / "a.jsonl", [e for e, _ in REWORDED] + english_tweets(20), 1000))],
                         table, config)
    news = ["The council meets on Thursday to vote on the new bike lanes", "Our cat learned to open the fridge"]
    second = pipeline.run([str(_jsonl(tmp_path / "b.jsonl", [later for _, later in REWORDED] + news, 2000))],
                          table, config, mode="append")
    for report in (first, second):
        assert report["input_records"] == report["output_records"] + report["rejected"] + sum(
            s["dropped"] for s in report["stages"])
    assert second["output_records"] == len(news)
    drops = publish.read_log(table, "drops", second["run_id"]).to_pylist()
    assert sorted((d["id"], d["reason"], d["dup_of"]) for d in drops) == [
        (str(2000 + i), "semantic_duplicate", str(1000 + i)) for i in range(len(REWORDED))]
    published = pl.read_delta(str(table))
    assert published.height == first["output_records"] + len(news)
    assert "semantic_vector" not in published.columns and published["semantic_cluster_size"].min() >= 1


def test_a_gpu_that_is_not_there_is_one_clear_error(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SetupError, match="torch sees no GPU here: set settings.dedupe_semantic.device"):
        DedupeSemantic(SemanticConfig(device="cuda:1")).ensure_setup()


def test_a_gpu_a_scheduler_gives_the_task_becomes_the_stage_device(monkeypatch):
    """on_gpu: the GPU a cluster gave the task replaces `auto` (and any cuda device); a stage set to the CPU asks
    for no GPU and stays as it is. Where torch does not see that GPU, the task stops saying where it came from."""
    import torch

    from transforms.stages import dedupe_semantic

    if not torch.cuda.is_available():
        with pytest.raises(SetupError, match=r"the cluster gave this task the GPU '1' .* sees no GPU"):
            DedupeSemantic().on_gpu("1")
    with pytest.raises(SetupError, match=r"the GPU 'GPU-8f2a' .* must name the GPUs by the indexes"):
        DedupeSemantic().on_gpu("GPU-8f2a")
    monkeypatch.setattr(dedupe_semantic, "assigned_device", lambda address: f"cuda:{address}")
    for device in ("auto", "cuda", "cuda:0"):
        placed = DedupeSemantic(SemanticConfig(device=device, threshold=0.95)).on_gpu("1")
        assert placed.config == SemanticConfig(device="cuda:1", threshold=0.95)
    on_cpu = DedupeSemantic(SemanticConfig(device="cpu"))
    assert not on_cpu.resources.gpu and on_cpu.on_gpu("1") is on_cpu
