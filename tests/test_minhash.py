"""dedupe_minhash: signatures equal datasketch's, folding, short and empty texts, band math, grouping (transitive
chains, verification), the persisted history state and a run through the polars engine. Texts here are made up."""

from __future__ import annotations

import pickle

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasketch import MinHash
from datasketch.lsh import _false_negative_probability, _false_positive_probability, _optimal_param
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.helpers import tweets, write_parts
from transforms import minhash
from transforms.dedupe import VERIFIED_PAIRS_UPTO, find_representatives
from transforms.engines.polars import PolarsEngine
from transforms.engines.staging import read_part
from transforms.stages.dedupe_exact import DedupeExact
from transforms.stages.dedupe_minhash import DedupeMinHash, MinHashConfig
from transforms.stages.normalize import Normalize

TEXTS = [
    "the bridge on main street is closed until friday",
    "ok",
    "",
    "héllo wörld, ça va? مرحبا بالعالم",
    "東京の天気は晴れです",
    "aaaaaaa aaaaaaa",
    "ab",
    "नमस्ते दुनिया",
    "x" * 300,
]


def oracle_hash(shingle: str) -> int:
    """The shingle hash, written independently one Python int at a time: Horner over (code point + 1) mod 2^64,
    then the high half folded onto the low one."""
    h = 0
    for ch in shingle:
        h = (h * 0x100000001B3 + ord(ch) + 1) % 2**64
    return (h ^ (h >> 32)) & 0xFFFFFFFF


def oracle_shingles(text: str, n: int) -> list[str]:
    if not text:
        return []
    return [text[i : i + n] for i in range(len(text) - n + 1)] or [text]


def sketch(texts: list[str | None], ngram: int = 5, num_perm: int = 128, seed: int = 1):
    folded = minhash.fold(pa.array(texts, pa.string()))
    hashes, offsets = minhash.shingle_hashes(folded, ngram)
    return folded.to_pylist(), hashes, offsets, minhash.signatures(hashes, offsets, num_perm, seed)


def assert_matches_datasketch(texts, ngram, num_perm, seed):
    folded, hashes, offsets, sigs = sketch(texts, ngram, num_perm, seed)
    for i, text in enumerate(folded):
        shingles = oracle_shingles(text, ngram)
        assert hashes[offsets[i] : offsets[i + 1]].tolist() == [oracle_hash(s) for s in shingles]
        reference = MinHash(num_perm=num_perm, seed=seed, hashfunc=oracle_hash)
        reference.update_batch(shingles)
        assert np.array_equal(sigs[i], reference.hashvalues), f"row {i}"


# ------------------------------------------------------------------------------------------------- signatures


@pytest.mark.parametrize("ngram,num_perm,seed", [(5, 128, 1), (3, 64, 7), (1, 16, 0), (8, 256, 42)])
def test_signatures_equal_datasketch(ngram, num_perm, seed):
    assert_matches_datasketch(TEXTS, ngram, num_perm, seed)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=6), st.integers(1, 7))
def test_signatures_equal_datasketch_on_any_text(texts, ngram):
    assert_matches_datasketch(texts, ngram, 32, 3)


def test_signatures_do_not_depend_on_batching(monkeypatch):
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "délta", "ψ", "東京", "x"]
    texts = [" ".join(rng.choice(words, rng.integers(0, 40))) for _ in range(300)]
    _, _, _, whole = sketch(texts)
    monkeypatch.setattr(minhash, "_SIG_CHUNK", 7)  # rows longer than a chunk, and chunks of many rows
    monkeypatch.setattr(minhash, "_BLOCK_ROWS", 3)
    _, _, _, small_blocks = sketch(texts)
    one_by_one = np.vstack([sketch([t])[3] for t in texts[:40]])
    assert np.array_equal(whole, small_blocks)
    assert np.array_equal(whole[:40], one_by_one)


def test_seed_changes_signatures_and_same_seed_repeats_them():
    a, b, c = sketch(TEXTS[:2], seed=1)[3], sketch(TEXTS[:2], seed=1)[3], sketch(TEXTS[:2], seed=2)[3]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


# ------------------------------------------------------------------------------------------------ folding


def keys_of(texts: list[str]) -> pa.ChunkedArray:
    return Normalize().annotate(pa.table({"text": pa.array(texts)})).column("dedupe_key")


@pytest.mark.parametrize(
    "variant",
    [
        "RT @cityDesk: The bridge on Main Street is closed until Friday!",
        "so true RT @cityDesk: the bridge on main street is closed until friday",
        "The bridge on Main Street is closed until Friday https://t.co/AbC123",
        "THE BRIDGE ON MAIN STREET IS CLOSED UNTIL FRIDAY 😡🔥",
        "the bridge on main street... is closed until friday?!",
        "@mayor the bridge on main street is closed until friday #traffic",
        "𝐓𝐡𝐞 𝐛𝐫𝐢𝐝𝐠𝐞 on Main Street is closed until Friday",
    ],
)
def test_tweet_variants_fold_to_the_same_words(variant):
    folded = minhash.fold(keys_of(["The bridge on Main Street is closed until Friday.", variant]))
    original, changed = folded.to_pylist()
    assert original == "the bridge on main street is closed until friday"
    comment_words = {"so", "true", "traffic"}
    assert [w for w in changed.split() if w not in comment_words] == original.split()


def test_texts_without_words_fold_to_empty():
    wordless = ["😂😂🔥", "https://t.co/xyz", "@someone", "RT @someone: …", "!!!"]
    assert minhash.fold(keys_of(wordless)).to_pylist() == [""] * len(wordless)
    assert minhash.fold(pa.array([None, "x"], pa.string())).to_pylist() == ["", "x"]


# ------------------------------------------------------------------------------------------- short and empty


def test_a_text_shorter_than_a_shingle_is_one_shingle():
    folded, hashes, offsets, sigs = sketch(["ok", "OK!!", "no", ""])
    assert np.diff(offsets).tolist() == [1, 1, 1, 0]
    assert hashes[0] == oracle_hash("ok")
    assert np.array_equal(sigs[0], sigs[1]) and not np.array_equal(sigs[0], sigs[2])
    assert (sigs[0] != minhash.MAX_HASH).all()
    assert (sigs[3] == minhash.MAX_HASH).all()  # datasketch's empty MinHash


def table_of(texts: list[str | None], seconds: list[int] | None = None) -> pa.Table:
    n = len(texts)
    seconds = seconds if seconds is not None else list(range(n))
    raw = pa.table(
        {
            "id": pa.array([str(1000 + i) for i in range(n)]),
            "created_at": pa.array(np.array(seconds, dtype="datetime64[s]"), pa.timestamp("us", tz="UTC")),
            "text": pa.array(texts, pa.string()),
        }
    )
    return raw.append_column("dedupe_key", keys_of([t or "" for t in texts]))


def dedupe(table: pa.Table, config: MinHashConfig | None = None) -> np.ndarray:
    """rep[r] as the polars engine computes it for one table."""
    stage = DedupeMinHash(config)
    keys = stage.keys(table)
    payload = stage.payload(table)
    verify = None if payload is None else (lambda a, b: stage.verify(payload[a], payload[b]))
    rank = np.argsort(np.argsort(table.column("created_at").cast(pa.int64()).to_numpy(), kind="stable"), kind="stable")
    return find_representatives(
        keys.column("row").to_numpy(), keys.column("band").to_numpy(), keys.column("key").to_numpy(), rank, verify
    )


def test_short_texts_group_only_with_their_variants():
    rep = dedupe(table_of(["ok", "OK!!", "ok 😂", "no", "k", "ok ok"]))
    assert rep.tolist() == [0, 0, 0, 3, 4, 5]


def test_empty_texts_get_no_keys_and_are_never_grouped():
    table = table_of(["😂", "🔥🔥", "https://t.co/a", None, "a real sentence about the weather today"])
    keys = DedupeMinHash().keys(table)
    assert set(keys.column("row").to_pylist()) == {4}
    assert dedupe(table).tolist() == [0, 1, 2, 3, 4]


# ------------------------------------------------------------------------------------------------- band math


def test_candidate_probability():
    assert minhash.candidate_probability(0.0, 20, 5) == 0.0
    assert minhash.candidate_probability(1.0, 20, 5) == 1.0
    assert minhash.candidate_probability(0.5, 20, 5) == pytest.approx(1 - (1 - 0.5**5) ** 20)
    s = np.linspace(0, 1, 50)
    assert (np.diff(minhash.candidate_probability(s, 9, 14)) >= 0).all()


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7, 0.9])
@pytest.mark.parametrize("num_perm", [32, 128, 256])
def test_lsh_params_match_datasketch(threshold, num_perm):
    params = minhash.lsh_params(threshold, num_perm)
    assert (params.bands, params.rows) == _optimal_param(threshold, num_perm, 0.5, 0.5)
    b, r = params.bands, params.rows
    assert params.false_positive == pytest.approx(_false_positive_probability(threshold, b, r), abs=1e-7)
    assert params.false_negative == pytest.approx(_false_negative_probability(threshold, b, r), abs=1e-7)


def test_lsh_weights_trade_false_negatives_for_false_positives():
    balanced = minhash.lsh_params(0.5, 128)
    recall_first = minhash.lsh_params(0.5, 128, false_positive_weight=0.1, false_negative_weight=0.9)
    assert recall_first.false_negative < balanced.false_negative
    assert recall_first.false_positive > balanced.false_positive


def test_config_bands_override_and_validation():
    config = MinHashConfig(bands=16, rows=8)
    assert (config.lsh.bands, config.lsh.rows) == (16, 8)
    assert config.lsh.false_negative == pytest.approx(_false_negative_probability(0.5, 16, 8), abs=1e-7)
    assert (MinHashConfig().lsh.bands, MinHashConfig().lsh.rows) == _optimal_param(0.5, 128, 0.5, 0.5)
    with pytest.raises(ValidationError):
        MinHashConfig(bands=16)
    with pytest.raises(ValidationError):
        MinHashConfig(bands=20, rows=8)  # 160 > 128 permutations
    with pytest.raises(ValidationError):
        MinHashConfig(threshold=1.0)


def test_band_keys_change_only_in_the_band_that_changed():
    sigs = np.tile(np.arange(128, dtype=np.uint32), (3, 1))
    sigs[1, 3 * 5 + 2] += 1  # one slot of band 3 (rows of 5)
    keys = minhash.band_keys(sigs, 25, 5, present=np.array([True, True, False]))
    assert keys.schema.types == [pa.int64(), pa.int32(), pa.uint64()]
    assert keys.column("row").to_pylist() == [0] * 25 + [1] * 25
    k = keys.column("key").to_numpy().reshape(2, 25)
    assert np.flatnonzero(k[0] != k[1]).tolist() == [3]


# ------------------------------------------------------------------------------------------------- grouping


WORDS = [f"w{i:02d}x" for i in range(40)]


def words(lo: int, hi: int) -> str:
    return " ".join(WORDS[lo:hi])


def exact_jaccard(a: str, b: str, n: int = 5) -> float:
    sa, sb = set(oracle_shingles(a, n)), set(oracle_shingles(b, n))
    return len(sa & sb) / len(sa | sb)


def test_transitive_chain_joins_one_cluster_with_the_earliest_row():
    texts = [words(0, 20), words(4, 24), words(8, 28), words(20, 40)]
    assert exact_jaccard(texts[0], texts[1]) > 0.6 and exact_jaccard(texts[1], texts[2]) > 0.6
    assert exact_jaccard(texts[0], texts[2]) < 0.45  # the ends are not duplicates of each other ...
    rep = dedupe(table_of(texts, seconds=[30, 20, 10, 0]))
    assert rep.tolist() == [2, 2, 2, 3]  # ... but the chain joins them, kept row = the earliest (row 2)


def test_verification_rejects_candidates_below_the_threshold():
    texts = [words(0, 20), words(12, 32)]  # some shared shingles, Jaccard well under 0.5
    assert exact_jaccard(*texts) < 0.3
    table = table_of(texts)
    loose = dict(bands=128, rows=1)  # one slot per band: nearly every pair sharing anything is a candidate
    shared = pl.from_arrow(DedupeMinHash(MinHashConfig(**loose)).keys(table)).group_by("band", "key").len()
    assert shared.filter(pl.col("len") > 1).height > 0
    assert dedupe(table, MinHashConfig(**loose, verify=False)).tolist() == [0, 0]
    assert dedupe(table, MinHashConfig(**loose, verify=True)).tolist() == [0, 1]


def test_components_on_a_hand_made_graph():
    # band 0: rows 0-1 and 3-4 share keys; band 1: rows 1-2 share one; verify rejects the pair (3, 4)
    rows = np.array([0, 1, 3, 4, 1, 2, 5])
    bands = np.array([0, 0, 0, 0, 1, 1, 1], dtype=np.int32)
    keys = np.array([7, 7, 9, 9, 5, 5, 6], dtype=np.uint64)
    rank = np.array([2, 1, 0, 3, 4, 5])  # row 2 is the most preferred

    def verify(a, b):
        return ~(np.isin(a, [3, 4]) & np.isin(b, [3, 4]))

    assert find_representatives(rows, bands, keys, rank).tolist() == [2, 2, 2, 3, 3, 5]
    assert find_representatives(rows, bands, keys, rank, verify).tolist() == [2, 2, 2, 3, 4, 5]


# ------------------------------------------------------------------------------------------------- history


def test_history_state_round_trips_through_parquet(tmp_path):
    table = table_of(["the first published tweet about rain", "😂", "another published tweet about sun"])
    stage = DedupeMinHash()
    pq.write_table(stage.history(table), tmp_path / "minhash_history.parquet")
    state = pq.read_table(tmp_path / "minhash_history.parquet")
    assert state.column("id").to_pylist() == ["1000", "1002"]  # the empty text has nothing to match
    sigs, _ = stage.sketch(table)
    expected = minhash.band_keys(sigs[[0, 2]], stage.config.lsh.bands, stage.config.lsh.rows)
    assert stage.history_keys(state).equals(expected)
    with pytest.raises(ValueError, match="append with the settings the table was made with"):
        DedupeMinHash(MinHashConfig(ngram=4)).history_keys(state)


@pytest.mark.parametrize("stage", [DedupeMinHash(), DedupeExact()], ids=lambda s: s.name)
def test_the_engine_writes_each_parts_state_as_its_own_file_in_order(tmp_path, stage):
    """A run's history: each part's state in a file of its own, named in part order (dedupe_exact's parts computed
    on two threads), with the scheme in its metadata; a second write replaces the first's files."""
    texts = [f"tweet number {i} about {'rain' if i % 3 else 'the sun'} and nothing else" for i in range(9)]
    table = table_of(texts + ["", "😂"])
    parts = write_parts(table, tmp_path / "parts", 3)
    folder = tmp_path / "history" / stage.name / "run"
    (folder / "part-00009.parquet").parent.mkdir(parents=True)
    (folder / "part-00009.parquet").write_bytes(b"a first try's file")
    PolarsEngine(part_rows=3, threads=2).write_history(stage, parts, folder)
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == [f"part-{i:05d}.parquet" for i in range(4)]
    for part, f in zip(parts, files):
        expected = stage.history(read_part(part))
        assert pq.read_table(f).equals(expected) and pq.read_schema(f).metadata == expected.schema.metadata
    assert sum(pq.read_metadata(f).num_rows for f in files) >= 9


def test_incremental_run_drops_near_duplicates_of_published_rows():
    stage = DedupeMinHash()
    budget = "the council approved the new budget for parks and schools"
    published = table_of([budget, "a quiet day at the market"], [0, 1])
    state = stage.history(published)
    new = table_of([f"RT @news: {budget.capitalize()}!", "something new entirely here"], [5, 6])
    hist_keys, new_keys = stage.history_keys(state), stage.keys(new)
    n_hist = state.num_rows
    rows = np.concatenate([hist_keys.column("row").to_numpy(), new_keys.column("row").to_numpy() + n_hist])
    bands = np.concatenate([hist_keys.column("band").to_numpy(), new_keys.column("band").to_numpy()])
    keys = np.concatenate([hist_keys.column("key").to_numpy(), new_keys.column("key").to_numpy()])
    payload = np.concatenate([stage.history_payload(state), stage.payload(new)])
    rank = np.arange(n_hist + new.num_rows)  # published rows first: they cannot be dropped any more
    rep = find_representatives(rows, bands, keys, rank, lambda a, b: stage.verify(payload[a], payload[b]))
    assert rep.tolist() == [0, 1, 0, 3]


# ------------------------------------------------------------------------------------------- stage and engine


def test_stage_reuses_the_sketch_of_the_same_table_and_pickles():
    table = table_of(TEXTS)
    stage = DedupeMinHash()
    first = stage.sketch(table)[0]
    assert stage.sketch(table)[0] is first
    clone = pickle.loads(pickle.dumps(stage))
    assert clone.keys(table).equals(stage.keys(table))
    assert stage.payload(table).dtype == np.uint8 and stage.payload(table).shape == (len(TEXTS), 128)
    assert DedupeMinHash(MinHashConfig(verify=False)).payload(table) is None


def test_estimated_jaccard_corrects_chance_matches_of_the_payload():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**32, (2000, 128), dtype=np.uint64).astype(np.uint32)
    b = a.copy()
    b[:, 64:] = rng.integers(0, 2**32, (2000, 64), dtype=np.uint64).astype(np.uint32)  # true share of equal slots: 0.5
    full = minhash.estimated_jaccard(a, b)
    bbit = minhash.estimated_jaccard(minhash.payload(a), minhash.payload(b))
    assert full.mean() == pytest.approx(0.5, abs=1e-6)
    assert bbit.mean() == pytest.approx(0.5, abs=0.005)  # uncorrected, 8-bit matches would read ~0.502


FLOOD = "Flood warning for the river valley tonight, stay safe"
ENGINE_ROWS = [
    {"id": "1", "text": FLOOD, "created_at": 100},
    {"id": "2", "text": f"RT @wx: {FLOOD} https://t.co/q", "created_at": 200},
    {"id": "3", "text": f"{FLOOD} everyone!! 🙏", "created_at": 50},
    {"id": "4", "text": "Lovely sunset over the harbour this evening", "created_at": 300},
    {"id": "5", "text": "😂😂", "created_at": 10},
    {"id": "6", "text": "😂", "created_at": 20},
]


def run_engine(tmp_path, annotate: bool, threads: int = 2):
    """threads 2: the parts' keys made in worker processes (keys_in_workers); 1: in this process."""
    engine = PolarsEngine(part_rows=2, threads=threads)
    parts = write_parts(tweets(ENGINE_ROWS), tmp_path / "in", 2)
    norm = engine.run_stage(Normalize(), parts, tmp_path / "norm", annotate)
    result = engine.run_stage(DedupeMinHash(), norm.parts, tmp_path / "minhash", annotate)
    assert not (tmp_path / "minhash" / "_sketches").exists()  # the workers' keys files do not outlive the step
    kept = [r for p in result.parts for r in read_part(p).to_pylist()]
    return kept, pq.read_table(result.drops).to_pylist()


@pytest.mark.parametrize("threads", [2, 1], ids=["worker-processes", "one-process"])
def test_engine_drops_near_duplicates_across_parts(tmp_path, threads):
    kept, drops = run_engine(tmp_path, annotate=False, threads=threads)
    assert sorted(r["id"] for r in kept) == ["3", "4", "5", "6"]
    assert sorted((d["id"], d["dup_of"], d["reason"], d["stage"]) for d in drops) == [
        ("1", "3", "near_duplicate", "dedupe_minhash"),
        ("2", "3", "near_duplicate", "dedupe_minhash"),
    ]
    assert {r["id"]: r["minhash_cluster_size"] for r in kept}["3"] == 3


def test_engine_annotate_mode_drops_nothing(tmp_path):
    kept, drops = run_engine(tmp_path, annotate=True)
    assert len(kept) == len(ENGINE_ROWS) and drops == []
    assert {r["id"]: r["minhash_dup_of"] for r in kept}["2"] == "3"


def reference_representatives(rows, bands, keys, rank, verify, pairs_upto=2) -> list[int]:
    """find_representatives' documented semantics, one Python step at a time: per (band, key), an edge between
    every two rows of a group of up to `pairs_upto` rows, else from every row to the group's min-rank row; verify
    filters edges; components keep their min-rank row."""
    parent = list(range(len(rank)))

    def root(x):
        while parent[x] != x:
            x = parent[x]
        return x

    groups: dict[tuple[int, int], list[int]] = {}
    for r, b, k in zip(rows.tolist(), bands.tolist(), keys.tolist()):
        groups.setdefault((b, k), []).append(r)
    for members in groups.values():
        center = min(members, key=lambda r: rank[r])
        if len(members) <= pairs_upto:
            pairs = [(x, y) for i, x in enumerate(members) for y in members[i + 1:]]
        else:
            pairs = [(center, m) for m in members if m != center]
        for x, y in pairs:
            if verify(np.array([x]), np.array([y]))[0]:
                a, b = root(x), root(y)
                parent[max(a, b, key=lambda r: rank[r])] = min(a, b, key=lambda r: rank[r])
    return [min((r for r in range(len(rank)) if root(r) == root(x)), key=lambda r: rank[r]) for x in range(len(rank))]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30), st.integers(1, 4), st.integers(1, 6), st.integers(0, 2**16))
def test_components_equal_a_reference_union_find(n, n_bands, n_keys, seed):
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n), n_bands)
    bands = np.tile(np.arange(n_bands, dtype=np.int32), n)
    keys = rng.integers(0, n_keys, n * n_bands).astype(np.uint64)
    rank = rng.permutation(n)

    def verify(a, b):  # a fixed, arbitrary verdict per unordered pair
        return (np.minimum(a, b) * 31 + np.maximum(a, b) * 17 + seed) % 3 != 0

    expected = reference_representatives(rows, bands, keys, rank, verify, VERIFIED_PAIRS_UPTO)
    assert find_representatives(rows, bands, keys, rank, verify).tolist() == expected
    unverified = reference_representatives(rows, bands, keys, rank, lambda a, b: [True])
    assert find_representatives(rows, bands, keys, rank).tolist() == unverified
