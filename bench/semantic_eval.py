"""What dedupe_semantic drops, on real tweets (train/dev-type files only), and how it chose its threshold.

    .venv/bin/python bench/semantic_eval.py [--data ../shared/data] [--clusters 2500]

1. The near-duplicate set of bench/near_dup_eval.py (real tweets from XLM-T, CrisisLex and SemEval, each original
   with made variants, plus distinct tweets; split by cluster into dev and heldout). A seeded sample of clusters per
   split keeps the CPU time to minutes. For each threshold (dev) and the default (both): precision, recall and F1 of
   the dropped rows, alone and together with dedupe_minhash; and the share of distinct tweets dropped per source,
   which is where an English encoder errs (tweets in scripts it does not know look alike to it).
2. The LSH against every pair: the groups the stage finds against the groups of all pairs whose cosine reaches the
   threshold, checked one by one (so the bands' misses show).
3. The Twitter URL paraphrase corpus sample (train file only): the share of paraphrase pairs (>= 4 of 6 raters) and
   of non-paraphrase pairs (<= 2 of 6) whose cosine reaches the threshold, and of those MinHash's check misses.
4. With --pool: the LSH at scale, on the English train-side tweets near_dup_eval draws from (~110k: SemEval,
   CrisisLex, XLM-T English; ~10 min on 2 cores): the drops of every pair against the stage's, with stars only and
   with the all-pairs check of small buckets.
Nothing here prints tweet texts: they hold real handles.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import near_dup_eval  # noqa: E402
from transforms import semantic  # noqa: E402
from transforms.dedupe import find_representatives  # noqa: E402
from transforms import minhash as minhash_eval  # noqa: E402
from transforms.stages.dedupe_minhash import DedupeMinHash, MinHashConfig  # noqa: E402
from transforms.stages.dedupe_semantic import DedupeSemantic, SemanticConfig  # noqa: E402

THRESHOLDS = (0.85, 0.9, 0.925, 0.95, 0.97)


LANG = {"arabic": "ar", "english": "en", "french": "fr", "german": "de", "hindi": "hi", "italian": "it",
        "portuguese": "pt", "spanish": "es"}


def sample(ev: near_dup_eval.EvalSet, clusters: int, seed: int) -> tuple[pa.Table, np.ndarray]:
    """A seeded sample of whole clusters, with `lang` as language ID would set it (from the tweet's source)."""
    c = ev.table.column("cluster").to_numpy()
    chosen = np.random.default_rng(seed).choice(np.unique(c), min(clusters, len(np.unique(c))), replace=False)
    keep = np.isin(c, chosen)
    table = near_dup_eval.with_dedupe_key(ev.table.filter(pa.array(keep)))
    lang = [LANG.get(g.split("/")[-1], "en") for g in table.column("group").to_pylist()]
    return table.append_column("lang", pa.array(lang)), keep


def stage_drops(stage: DedupeSemantic, table: pa.Table) -> np.ndarray:
    table = table.append_column("semantic_vector", stage.annotate(table).column("semantic_vector"))
    keys, payload = stage.keys(table), stage.payload(table)
    rep = find_representatives(keys.column("row").to_numpy(), keys.column("band").to_numpy(),
                               keys.column("key").to_numpy(), near_dup_eval._rank(table),
                               lambda a, b: stage.verify(payload[a], payload[b]))
    return rep != np.arange(table.num_rows)


def all_pair_drops(vectors: np.ndarray, present: np.ndarray, rank: np.ndarray, threshold: float) -> np.ndarray:
    """Rows dropped if every pair were checked: components of pairs at or above the threshold, best rank kept."""
    n = len(vectors)
    unit = vectors.astype(np.float32)
    unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-9)
    a, b = [], []
    for start in range(0, n, 2048):
        block = unit[start:start + 2048] @ unit.T
        i, j = np.nonzero(block >= threshold - 1e-3)  # float prefilter, then the stage's exact integer cosine
        i += start
        ok = (i < j) & present[i] & present[j]
        i, j = i[ok], j[ok]
        ok = semantic.cosine(vectors[i], vectors[j]) >= threshold
        a.append(i[ok])
        b.append(j[ok])
    a, b = np.concatenate(a), np.concatenate(b)
    _, labels = connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    best = np.full(labels.max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(best, labels, rank)
    return rank != best[labels]


def report(name: str, pred: np.ndarray, truth: np.ndarray, table: pa.Table) -> None:
    s = near_dup_eval.score(pred, truth)
    kinds = np.array(table.column("kind").to_pylist())
    groups = np.array(table.column("group").to_pylist())
    distinct = kinds == "distinct"
    worst = sorted(((pred[distinct & (groups == g)].mean(), g) for g in np.unique(groups[distinct])), reverse=True)
    english = np.asarray(table.column("lang").to_pylist()) == "en"
    print(f"  {name}: {near_dup_eval._fmt(s)}; recall on English rows {pred[truth & english].mean():.4f}; "
          f"distinct tweets dropped {pred[distinct].mean():.4f} (most: {', '.join(f'{g} {v:.3f}' for v, g in worst[:2])})")


def paraphrases(data: Path, stage: DedupeSemantic) -> None:
    path = data / "twitter_url_corpus_sample" / "Twitter_URL_Corpus_train_sample.txt"
    if not path.exists():
        return
    left, right, votes = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            left.append(parts[0])
            right.append(parts[1])
            votes.append(int(parts[2].strip("()").split(",")[0]))
    table = near_dup_eval.with_dedupe_key(pa.table({"id": [str(i) for i in range(2 * len(left))],
                                                    "text": left + right}))
    vectors, present = semantic.vectors_of(stage.annotate(table).column("semantic_vector"))
    n = len(left)
    cos = semantic.cosine(vectors[:n], vectors[n:])
    votes = np.array(votes)
    para, non = votes >= 4, votes <= 2
    sigs = DedupeMinHash().payload(table)
    lexical = minhash_eval.estimated_jaccard(sigs[:n], sigs[n:]) >= MinHashConfig().threshold
    print(f"  dedupe_minhash's check (estimated Jaccard >= {MinHashConfig().threshold}) joins "
          f"{np.mean(lexical[para]):.3f} of the {para.sum()} paraphrase pairs, {np.mean(lexical[non]):.3f} of the "
          f"{non.sum()} non-paraphrase pairs")
    for threshold in THRESHOLDS:
        print(f"  threshold {threshold}: paraphrase pairs at or above {np.mean(cos[para] >= threshold):.3f}, "
              f"of those MinHash misses {np.mean(cos[para & ~lexical] >= threshold):.3f}; "
              f"non-paraphrase {np.mean(cos[non] >= threshold):.3f}")
    print(f"  cosine quantiles (0.1, 0.5, 0.9): paraphrase {np.round(np.quantile(cos[para], [0.1, 0.5, 0.9]), 3)}, "
          f"non-paraphrase {np.round(np.quantile(cos[non], [0.1, 0.5, 0.9]), 3)}")


def pool_scale(data: Path, stage: DedupeSemantic) -> None:
    from transforms import dedupe

    pool = near_dup_eval.load_pool(data)
    pool = pool.filter(pool["group"].is_in(["semeval", "crisislex", "xlm_t/english"]))
    table = near_dup_eval.with_dedupe_key(pa.table({"id": [str(i) for i in range(pool.height)],
                                                    "text": pool["text"].to_list()}))
    t = time.perf_counter()
    vectors, present = semantic.vectors_of(stage.annotate(table).column("semantic_vector"))
    print(f"pool: {table.num_rows} tweets embedded in {time.perf_counter() - t:.0f}s")
    rank = np.arange(table.num_rows)
    t = time.perf_counter()
    exact = all_pair_drops(vectors, present, rank, stage.config.threshold)
    print(f"  every pair: {int(exact.sum())} drops ({time.perf_counter() - t:.0f}s)")
    keys, cfg = stage.keys(table.append_column("semantic_vector", semantic.vector_column(vectors, present))), stage.config
    rows, bands, key = (keys.column(c).to_numpy() for c in ("row", "band", "key"))
    for pairs_upto, label in ((2, "stars only"), (dedupe.VERIFIED_PAIRS_UPTO, "the stage (small buckets: all pairs)")):
        t = time.perf_counter()
        parent, checked = np.arange(table.num_rows), 0
        for band in range(cfg.bands):
            sel = bands == band
            u, v = dedupe.band_edges(rank[rows[sel]], key[sel], pairs_upto)
            ok = stage.verify(vectors[u], vectors[v])
            parent, checked = dedupe.union_edges(parent, u[ok], v[ok]), checked + len(u)
        pred = parent != rank
        print(f"  LSH {cfg.bands} x {cfg.rows}, {label}: {int(pred.sum())} drops, {int((exact & ~pred).sum())} missed "
              f"({(exact & ~pred).sum() / max(exact.sum(), 1):.4f}), {int((pred & ~exact).sum())} extra; "
              f"{checked / table.num_rows:.1f} pairs checked per row ({time.perf_counter() - t:.0f}s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--clusters", type=int, default=2500, help="clusters sampled per split")
    parser.add_argument("--pool", action="store_true", help="also the LSH against every pair on ~110k tweets")
    args = parser.parse_args()
    sets = near_dup_eval.build(args.data)
    stage = DedupeSemantic()
    stage.ensure_setup()
    for split, seed in (("dev", 0), ("heldout", 1)):
        table, keep = sample(sets[split], args.clusters, seed)
        truth = sets[split].truth[keep]
        t = time.perf_counter()
        vectors, present = semantic.vectors_of(stage.annotate(table).column("semantic_vector"))
        took = time.perf_counter() - t
        print(f"{split}: {table.num_rows} rows ({args.clusters} clusters), {int(truth.sum())} to drop; "
              f"embedded in {took:.1f}s ({table.num_rows / took:.0f} rows/s)")
        rank = near_dup_eval._rank(table)
        minhash = near_dup_eval.predict_stage(table.drop_columns(["dedupe_key", "lang"]), MinHashConfig())
        report("dedupe_minhash (defaults)", minhash, truth, table)
        if split == "dev":
            every = DedupeSemantic(SemanticConfig(languages=None))
            every.ensure_setup()
            all_vectors, all_present = semantic.vectors_of(every.annotate(table).column("semantic_vector"))
            for threshold in THRESHOLDS:
                exact = all_pair_drops(all_vectors, all_present, rank, threshold)
                report(f"every pair, all languages, threshold {threshold}", exact, truth, table)
        pred = stage_drops(stage, table)
        report("dedupe_semantic (defaults)", pred, truth, table)
        report("dropped by either (as both stages in a run)", minhash | pred, truth, table)
        exact = all_pair_drops(vectors, present, rank, stage.config.threshold)
        found = (pred == exact).mean()
        print(f"  LSH against every pair at the default threshold: same verdict on {found:.4f} of rows; "
              f"{int((exact & ~pred).sum())} drops missed, {int((pred & ~exact).sum())} extra")
    print(f"Twitter URL corpus sample (train), default threshold {SemanticConfig().threshold}:")
    paraphrases(args.data, stage)
    if args.pool:
        pool_scale(args.data, stage)


if __name__ == "__main__":
    main()
