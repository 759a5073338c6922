"""Near-duplicate evaluation set built from real tweets (train/val-type files only), and its scoring.

    .venv/bin/python bench/near_dup_eval.py [--data ../shared/data] [--sweep]

The set: real tweets from XLM-T (8 languages, train+val), CrisisLex T6/T26 (crisis events: many same-topic tweets)
and SemEval 2013-2016 train/dev. The pool is first cleaned of its natural near-duplicates (tweets whose word sets or
character 4-gram sets have Jaccard >= POOL_JACCARD join a cluster, of which one tweet stays; candidates come from a
high-recall MinHash LSH, then the Jaccard is computed exactly). Same-topic tweets below that stay in as hard
negatives: many CrisisLex pairs about one event share half their words. Then some pool
tweets become originals, each with 1-3 made variants: "RT @x: ..." retweets, retweets with a comment, appended links,
hashtags or emoji, case/punctuation changes, truncation with "…", one-word edits, and pairs of these. Edits that add
or remove words (comment, hashtags, truncation, word edit) are only made to tweets of >= EDIT_MIN_WORDS words: on a
3-word tweet they would make a different tweet. Handles, links and comments are made up.

Ground truth: an original and its variants form a cluster; every row but the cluster's preferred one (earliest
created_at, then smallest id) should be dropped. Clusters are split (seeded) into "dev" (used to choose n-gram size
and threshold) and "heldout" (the reported figure). Scores are precision, recall and F1 of the dropped set.
Nothing here prints tweet texts: they hold real handles.
"""

from __future__ import annotations

import argparse
import re
import string
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from transforms import minhash  # noqa: E402
from transforms.dedupe import find_representatives, preference_rank  # noqa: E402
from transforms.stages.dedupe_minhash import DedupeMinHash, MinHashConfig  # noqa: E402
from transforms.stages.normalize import Normalize, dedupe_key  # noqa: E402

SEED = 20250311
POOL_JACCARD = 0.6
POOL_BANDS, POOL_ROWS = 64, 3  # candidate search for the pool cleaning: recall ~1 at Jaccard >= 0.5
EDIT_MIN_WORDS = 8
DEV_SHARE = 0.6
SEMEVAL_FILES = (  # train/dev files only; the *test* files are left alone
    "twitter-2013train-A.tsv",
    "twitter-2013dev-A.tsv",
    "twitter-2015train-A.tsv",
    "twitter-2016train-A.tsv",
    "twitter-2016dev-A.tsv",
)
XLM_T_LANGUAGES = ("arabic", "english", "french", "german", "hindi", "italian", "portuguese", "spanish")
# (source group, originals, distinct tweets) drawn per group
QUOTAS = {
    **{f"xlm_t/{lang}": (300, 900) for lang in XLM_T_LANGUAGES},
    "crisislex": (2200, 9000),
    "semeval": (1400, 5000),
}
BASELINE_THRESHOLD = 0.6  # plain datasketch's best threshold on the dev split (see --sweep)

COMMENTS = (
    "so true", "wow", "this!!", "must read", "look at this", "omg", "agreed", "lol", "mira esto", "qué fuerte",
    "très vrai", "incroyable", "schau mal", "genau so", "guarda qua", "verdade", "olha isso", "yeh dekho", "شاهد",
)
HASHTAGS = (
    "#news", "#breaking", "#love", "#tbt", "#mood", "#followfriday", "#fail", "#update", "#viral", "#noticias",
    "#actualité", "#nachrichten", "#notizie", "#brasil", "#india", "#أخبار", "#photo", "#repost", "#mustread",
)
EMOJI = ("😂", "😍", "🙏", "🔥", "👍", "😭", "❤️", "✨", "😡", "🎉", "👇", "💯", "🤔", "😊", "🇪🇸", "🙌🏽")
VARIANTS = ("rt", "link", "emoji", "case_punct", "rt_comment", "hashtags", "truncate", "word_edit")
WORD_CHANGING = {"rt_comment", "hashtags", "truncate", "word_edit"}


# ---------------------------------------------------------------------------------------------------------- pool


def _unescape_u(text: str) -> str:
    """Some SemEval 2013 files hold literal \\uXXXX escapes (incl. surrogate pairs): decode them."""
    if "\\u" not in text:
        return text
    raw = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    return raw.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def load_pool(data: Path) -> pl.DataFrame:
    """All candidate tweets: (text, group)."""
    frames = []
    for lang in XLM_T_LANGUAGES:
        for split in ("train", "val"):
            lines = (data / "xlm_t" / lang / f"{split}_text.txt").read_text(encoding="utf-8").splitlines()
            frames.append(pl.DataFrame({"text": lines, "group": f"xlm_t/{lang}"}))
    for path in sorted((data / "crisislex").glob("CrisisLexT*/*/*.csv")):
        df = pl.read_csv(path, infer_schema=False)
        frames.append(pl.DataFrame({"text": df[:, 1], "group": "crisislex"}))
    for name in SEMEVAL_FILES:
        path = data / "semeval2017_task4a" / "downloaded" / name
        df = pl.read_csv(path, separator="\t", has_header=False, quote_char=None, infer_schema=False)
        text = df[:, 2].map_elements(_unescape_u, return_dtype=pl.String)
        frames.append(pl.DataFrame({"text": text, "group": "semeval"}))
    pool = pl.concat(frames).drop_nulls("text")
    pool = pool.with_columns(text=pl.col("text").str.strip_chars()).filter(pl.col("text").str.len_chars() > 0)
    return pool.with_row_index("doc")


def _words(text: pl.Expr) -> pl.Expr:
    """Independent of the stage's folding: the normalize key's letter/digit runs."""
    return dedupe_key(text).str.replace_all("@user", " ", literal=True).str.extract_all(r"[\p{L}\p{N}]+")


def _tokens(pool: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(doc, tok) long tables of distinct word ids and distinct character 4-gram ids."""
    words = pool.select("doc", w=_words(pl.col("text")))
    word_tok = (
        words.explode("w")
        .drop_nulls("w")
        .unique(["doc", "w"])
        .select("doc", tok=pl.col("w").cast(pl.Categorical).to_physical())
    )
    joined = words.select("doc", s=pl.col("w").list.join(" ")).filter(pl.col("s").str.len_chars() > 0)
    grams = (
        joined.with_columns(pos=pl.int_ranges(0, (pl.col("s").str.len_chars().cast(pl.Int64) - 3).clip(lower_bound=1)))
        .explode("pos")
        .select("doc", g=pl.col("s").str.slice(pl.col("pos"), 4))
        .unique(["doc", "g"])
        .select("doc", tok=pl.col("g").cast(pl.Categorical).to_physical())
    )
    return word_tok, grams


def _pairs_within_groups(
    members: np.ndarray, group_start: np.ndarray, group_size: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """All (members[i], members[j]), i < j, within each run; members sorted by group, one start/size per member."""
    k = np.arange(len(members))
    count = group_size - 1 - (k - group_start)
    left = np.repeat(k, count)
    right = left + 1 + np.arange(len(left)) - np.repeat(np.cumsum(count) - count, count)
    return members[left], members[right]


def similar_pairs(tokens: pl.DataFrame, threshold: float) -> np.ndarray:
    """Doc pairs (a < b, as an (m, 2) array) whose token sets have Jaccard >= threshold, verified exactly.

    Candidates: pairs sharing a band of a 64 x 3 MinHash LSH over the token sets, which misses a pair of Jaccard 0.5
    with probability (1 - 0.5^3)^64 < 2e-4 (and less above), while pairs of unrelated tweets rarely meet."""
    doc = tokens["doc"].to_numpy().astype(np.int64)
    tok = tokens["tok"].to_numpy().astype(np.int64)
    order = np.argsort(doc, kind="stable")
    doc, tok = doc[order], tok[order]
    n_docs = int(doc.max()) + 1
    size = np.bincount(doc, minlength=n_docs)
    offsets = np.concatenate(([0], np.cumsum(size)))
    sigs = minhash.signatures(tok.astype(np.uint32), offsets, POOL_BANDS * POOL_ROWS, SEED)
    keys = minhash.band_keys(sigs, POOL_BANDS, POOL_ROWS, size > 0)
    rows, bands, key = (keys.column(c).to_numpy() for c in ("row", "band", "key"))
    by_key = np.lexsort((rows, key, bands))
    rows, bands, key = rows[by_key], bands[by_key], key[by_key]
    new = np.concatenate(([True], (key[1:] != key[:-1]) | (bands[1:] != bands[:-1])))
    starts = np.flatnonzero(new)
    sizes = np.diff(np.concatenate((starts, [len(rows)])))
    a, b = _pairs_within_groups(rows, np.repeat(starts, sizes), np.repeat(sizes, sizes))
    pairs = np.unique(np.stack((np.minimum(a, b), np.maximum(a, b))), axis=1)
    matrix = csr_matrix((np.ones(len(doc), np.float32), (doc, tok)), shape=(n_docs, int(tok.max()) + 1))
    keep = np.zeros(pairs.shape[1], dtype=bool)
    for lo in range(0, pairs.shape[1], 200_000):
        a, b = pairs[0, lo : lo + 200_000], pairs[1, lo : lo + 200_000]
        inter = np.asarray(matrix[a].multiply(matrix[b]).sum(axis=1)).ravel()
        keep[lo : lo + 200_000] = inter >= threshold * (size[a] + size[b] - inter)
    return pairs[:, keep].T


def clean_pool(pool: pl.DataFrame) -> pl.DataFrame:
    """One tweet per cluster of natural near-duplicates: word sets or character 4-gram sets with Jaccard >=
    POOL_JACCARD (see similar_pairs for the pairs this can miss)."""
    word_tok, grams = _tokens(pool)
    edges = np.concatenate([similar_pairs(word_tok, POOL_JACCARD), similar_pairs(grams, POOL_JACCARD)])
    n = int(pool["doc"].max()) + 1
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    keep = pool.select("doc", label=pl.Series(label)[pool["doc"]]).group_by("label").agg(pl.col("doc").min())
    return pool.join(keep.select("doc"), on="doc").sort("doc")


def sample_pool(pool: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Tweets with a letter or digit, one per word set (retweet storms collapse), a seeded sample per group with
    headroom for cleaning, then cleaned of natural near-duplicates."""
    words = pool.with_columns(s=_words(pl.col("text")).list.unique().list.sort().list.join(" "))
    words = words.filter(pl.col("s").str.len_chars() > 0)
    words = words.group_by("s").agg(pl.col("doc").min()).select("doc")
    pool = pool.join(words, on="doc").sort("doc")
    parts = []
    for group, (n_orig, n_dist) in QUOTAS.items():
        docs = pool.filter(pl.col("group") == group)["doc"].to_numpy()
        take = min(len(docs), int((n_orig + n_dist) * 1.25))
        parts.append(pl.DataFrame({"doc": np.sort(rng.choice(docs, take, replace=False))}))
    return clean_pool(pool.join(pl.concat(parts), on="doc").sort("doc"))


# ------------------------------------------------------------------------------------------------------ variants


def _handle(rng: np.random.Generator) -> str:
    return "@" + "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz0123456789_"), rng.integers(5, 13)))


def _link(rng: np.random.Generator) -> str:
    return "https://t.co/" + "".join(rng.choice(list(string.ascii_letters + string.digits), 10))


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def make_variant(text: str, kind: str, rng: np.random.Generator, filler: list[str]) -> str:
    """One made near-duplicate of `text`; `filler` holds words for word edits."""
    words = text.split()
    if kind == "rt":
        return f"RT {_handle(rng)}: {text}"
    if kind == "link":
        return f"{text} {_link(rng)}"
    if kind == "emoji":
        emo = "".join(_pick(rng, EMOJI) for _ in range(rng.integers(1, 4)))
        return f"{emo} {text}" if rng.random() < 0.3 else f"{text} {emo}"
    if kind == "case_punct":
        choice = rng.integers(4)
        if choice == 0:
            return text.upper()
        if choice == 1:
            return text.lower()
        if choice == 2:
            return re.sub(r"[^\w\s@#/:.]", "", text) + _pick(rng, ("!!!", "!", "?!", " ...", "."))
        return re.sub(r"([.!?])", r"\1\1", text) + "!!"
    if kind == "rt_comment":
        return f"{_pick(rng, COMMENTS)} RT {_handle(rng)}: {text}"
    if kind == "hashtags":
        return " ".join([text, *(_pick(rng, HASHTAGS) for _ in range(rng.integers(1, 3)))])
    if kind == "truncate":
        cut = int(len(text) * rng.uniform(0.8, 0.93))
        return text[:cut].rstrip() + "…"
    if kind == "word_edit":
        i = int(rng.integers(len(words)))
        op = rng.integers(4)
        if op == 0:
            words[i] = _pick(rng, filler)
        elif op == 1:
            del words[i]
        elif op == 2:
            words.insert(i, _pick(rng, filler))
        else:
            w = words[i]
            j = int(rng.integers(max(len(w) - 1, 1)))
            words[i] = w[:j] + w[j + 1 : j + 2] + w[j : j + 1] + w[j + 2 :] if len(w) > 1 else w + w
        return " ".join(words)
    raise ValueError(kind)


@dataclass(frozen=True)
class EvalSet:
    table: pa.Table  # id, text, created_at, plus cluster, kind, group, split
    truth: np.ndarray  # bool per row: should be dropped


def build(data: Path, seed: int = SEED) -> dict[str, EvalSet]:
    """The evaluation set, per split ("dev", "heldout"). Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    pool = sample_pool(load_pool(data), rng)
    filler = pool.filter(pl.col("group") == "semeval")["text"].str.extract_all(r"[A-Za-z]{3,12}").explode().drop_nulls()
    filler = filler.unique(maintain_order=True).head(5000).to_list()
    rows: list[tuple[int, str, str, str]] = []  # (cluster, kind, group, text)
    cluster = 0
    for group, (n_orig, n_dist) in QUOTAS.items():
        texts = pool.filter(pl.col("group") == group)["text"].to_list()
        order = rng.permutation(len(texts))[: n_orig + n_dist]
        if len(order) < n_orig + n_dist:
            raise ValueError(f"{group}: {len(order)} clean tweets, {n_orig + n_dist} needed")
        for k, idx in enumerate(order):
            text = texts[idx]
            rows.append((cluster, "original" if k < n_orig else "distinct", group, text))
            if k < n_orig:
                long = len(text.split()) >= EDIT_MIN_WORDS
                allowed = [v for v in VARIANTS if long or v not in WORD_CHANGING]
                for _ in range(int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2]))):
                    kinds = rng.choice(allowed, size=int(rng.choice([1, 2], p=[0.75, 0.25])), replace=False)
                    variant = text
                    for kind in kinds:
                        variant = make_variant(variant, str(kind), rng, filler)
                    rows.append((cluster, "+".join(sorted(map(str, kinds))), group, variant))
            cluster += 1
    n = len(rows)
    clusters = np.array([r[0] for r in rows])
    split_of_cluster = np.where(rng.random(cluster) < DEV_SHARE, "dev", "heldout")
    ids = 10**17 + rng.permutation(n).astype(np.int64) * 1000 + rng.integers(0, 1000, n)  # unique, unordered
    offsets_us = rng.integers(0, 30 * 86400 * 10**6, n).astype("timedelta64[us]")
    created = np.datetime64("2020-01-01T00:00:00", "us") + offsets_us
    full = pa.table(
        {
            "id": pa.array(ids.astype(str)),
            "text": pa.array([r[3] for r in rows]),
            "created_at": pa.array(created, type=pa.timestamp("us", tz="UTC")),
            "cluster": pa.array(clusters),
            "kind": pa.array([r[1] for r in rows]),
            "group": pa.array([r[2] for r in rows]),
            "split": pa.array(split_of_cluster[clusters]),
        }
    )
    out = {}
    for split in ("dev", "heldout"):
        table = full.filter(pa.compute.equal(full.column("split"), split))
        rank = _rank(table)
        c = table.column("cluster").to_numpy()
        best = np.full(cluster, np.iinfo(np.int64).max)
        np.minimum.at(best, c, rank)
        out[split] = EvalSet(table, rank != best[c])
    return out


def _rank(table: pa.Table) -> np.ndarray:
    created = table.column("created_at").cast(pa.int64()).to_numpy()
    return preference_rank(created, table.column("id").to_numpy().astype(np.uint64))


# ------------------------------------------------------------------------------------------------------ scoring


def with_dedupe_key(table: pa.Table) -> pa.Table:
    cols = Normalize().annotate(table)
    table = table.set_column(table.column_names.index("text"), "text", cols.column("text"))
    return table.append_column("dedupe_key", cols.column("dedupe_key"))


def predict_stage(table: pa.Table, config: MinHashConfig) -> np.ndarray:
    """Rows the dedupe_minhash stage drops, grouped as the engine groups them."""
    table = with_dedupe_key(table)
    stage = DedupeMinHash(config)
    keys = stage.keys(table)
    payload = stage.payload(table)
    verify = None if payload is None else (lambda a, b: stage.verify(payload[a], payload[b]))
    rows, bands, key = (keys.column(c).to_numpy() for c in ("row", "band", "key"))
    rep = find_representatives(rows, bands, key, _rank(table), verify)
    return rep != np.arange(table.num_rows)


def predict_datasketch(table: pa.Table, threshold: float, ngram: int = 5, num_perm: int = 128) -> np.ndarray:
    """The plain reference: datasketch MinHash + MinHashLSH over character n-grams of the normalize key, every
    LSH candidate accepted, components keep their preferred row."""
    from datasketch import MinHash, MinHashLSH

    keys = with_dedupe_key(table).column("dedupe_key").to_pylist()
    sets = [[k[i : i + ngram].encode() for i in range(max(len(k) - ngram + 1, 1))] for k in keys]
    present = [i for i, k in enumerate(keys) if k]
    sketches = MinHash.bulk([sets[i] for i in present], num_perm=num_perm)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    for i, m in zip(present, sketches):
        lsh.insert(i, m)
    a, b = [], []
    for i, m in zip(present, sketches):
        found = lsh.query(m)
        a.extend([i] * len(found))
        b.extend(found)
    n = table.num_rows
    _, label = connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    rank = _rank(table)
    best = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(best, label, rank)
    return rank != best[label]


def score(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    tp = int(np.sum(pred & truth))
    precision = tp / max(int(pred.sum()), 1)
    recall = tp / max(int(truth.sum()), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    counts = {"dropped": int(pred.sum()), "should_drop": int(truth.sum())}
    return {"precision": precision, "recall": recall, "f1": f1, **counts}


def recall_by_kind(ev: EvalSet, pred: np.ndarray) -> dict[str, float]:
    """Recall per variant kind ("original": originals that a variant outranks; "two edits": variants made of two)."""
    kinds = np.array(["two edits" if "+" in k else k for k in ev.table.column("kind").to_pylist()])
    return {k: float(pred[ev.truth & (kinds == k)].mean()) for k in sorted(set(kinds[ev.truth]))}


def _fmt(s: dict[str, float]) -> str:
    counts = f"dropped {s['dropped']}, should drop {s['should_drop']}"
    return f"P={s['precision']:.4f} R={s['recall']:.4f} F1={s['f1']:.4f} ({counts})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--sweep", action="store_true", help="score n-gram sizes and thresholds on the dev split")
    args = parser.parse_args()
    t = time.perf_counter()
    sets = build(args.data)
    for split, ev in sets.items():
        kinds = np.array(ev.table.column("kind").to_pylist())
        distinct = int((kinds == "distinct").sum())
        print(f"{split}: {ev.table.num_rows} rows, {int(ev.truth.sum())} to drop, {distinct} distinct tweets")
    print(f"built in {time.perf_counter() - t:.1f}s")
    dev, held = sets["dev"], sets["heldout"]
    if args.sweep:
        for ngram in (3, 4, 5, 6):
            for threshold in (0.4, 0.45, 0.5, 0.55, 0.6, 0.7):
                for verify in (True, False):
                    config = MinHashConfig(ngram=ngram, threshold=threshold, verify=verify)
                    s = score(predict_stage(dev.table, config), dev.truth)
                    print(f"dev stage ngram={ngram} threshold={threshold} verify={verify}: {_fmt(s)}")
        for threshold in (0.4, 0.5, 0.6, 0.7):
            s = score(predict_datasketch(dev.table, threshold), dev.truth)
            print(f"dev datasketch threshold={threshold}: {_fmt(s)}")
    for split, ev in (("dev", dev), ("heldout", held)):
        t = time.perf_counter()
        pred = predict_stage(ev.table, MinHashConfig())
        took = time.perf_counter() - t
        print(f"{split} dedupe_minhash (defaults): {_fmt(score(pred, ev.truth))} [{took:.1f}s]")
        print("  recall by variant: " + ", ".join(f"{k} {v:.3f}" for k, v in recall_by_kind(ev, pred).items()))
        base = predict_datasketch(ev.table, BASELINE_THRESHOLD)
        print(f"{split} datasketch 5-char, threshold {BASELINE_THRESHOLD}: {_fmt(score(base, ev.truth))}")


if __name__ == "__main__":
    main()
