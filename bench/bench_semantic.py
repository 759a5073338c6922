"""dedupe_semantic's throughput against the obvious alternative, side by side on the same real tweets.

    .venv/bin/python bench/bench_semantic.py [--n 4000 16000] [--device auto]

- stage: the dedupe_semantic stage as an engine runs it: key and fold, embed (fixed-shape batches, int8), LSH keys,
  grouping with the integer cosine check (transforms/semantic.py, transforms/dedupe.py).
- alternative: sentence-transformers' own `encode` (length-sorted batches padded to their longest row, float32),
  then every pair's cosine in blocks and connected components of the pairs at the threshold (brute force, exact).
Both embed the same folded texts and keep the same threshold; the script also says how many rows each drops and how
many verdicts differ. Texts: SemEval 2013-2016 train/dev and CrisisLex tweets from ../shared/data (the demo sample
bundled in the repo when that is absent), repeated with a changed word where more are asked for.
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

from transforms import semantic  # noqa: E402
from transforms.encoder import minilm_dir  # noqa: E402
from transforms.dedupe import find_representatives  # noqa: E402
from transforms.stages.dedupe_semantic import DedupeSemantic, SemanticConfig  # noqa: E402
from transforms.stages.normalize import Normalize  # noqa: E402


def real_texts(data: Path, n: int) -> list[str]:
    if data.exists():
        import near_dup_eval

        pool = near_dup_eval.load_pool(data)
        texts = pool.filter(pool["group"].is_in(["semeval", "crisislex"]))["text"].to_list()
    else:
        import gzip
        import json

        with gzip.open(REPO / "transforms/demo_data/crisislex_sample.jsonl.gz", "rt", encoding="utf-8") as f:
            texts = [json.loads(line)["text"] for line in f]
    texts = [texts[i] for i in np.random.default_rng(0).permutation(len(texts))]
    out, round_ = list(texts[:n]), 0
    while len(out) < n:  # more than the sources hold: copies with one word appended, so they are new rows
        round_ += 1
        out += [f"{t} {round_}" for t in texts[: n - len(out)]]
    return out


def table_of(texts: list[str]) -> pa.Table:
    n = len(texts)
    table = pa.table({"id": pa.array([str(10**15 + i) for i in range(n)]), "text": pa.array(texts)})
    return table.set_column(1, "text", Normalize().annotate(table).column("text"))


def run_stage(stage: DedupeSemantic, table: pa.Table) -> tuple[np.ndarray, dict[str, float]]:
    t0 = time.perf_counter()
    table = table.append_column("semantic_vector", stage.annotate(table).column("semantic_vector"))
    t1 = time.perf_counter()
    keys, payload = stage.keys(table), stage.payload(table)
    rep = find_representatives(keys.column("row").to_numpy(), keys.column("band").to_numpy(),
                               keys.column("key").to_numpy(), np.arange(table.num_rows),
                               lambda a, b: stage.verify(payload[a], payload[b]))
    t2 = time.perf_counter()
    return rep != np.arange(table.num_rows), {"embed": t1 - t0, "group": t2 - t1}


def run_alternative(model, table: pa.Table, threshold: float, batch_size: int) -> tuple[np.ndarray, dict[str, float]]:
    t0 = time.perf_counter()
    folded = semantic.folded_text(table.column("text"))
    present = np.asarray(folded.to_numpy(zero_copy_only=False) != "")
    rows = np.flatnonzero(present)
    vectors = np.zeros((table.num_rows, semantic.DIM), dtype=np.float32)
    vectors[rows] = model.encode(folded.take(pa.array(rows)).to_pylist(), batch_size=batch_size,
                                 normalize_embeddings=True, convert_to_numpy=True)
    t1 = time.perf_counter()
    n = len(vectors)
    a, b = [], []
    for start in range(0, n, 2048):
        i, j = np.nonzero(vectors[start:start + 2048] @ vectors.T >= threshold)
        i += start
        keep = (i < j) & present[i] & present[j]
        a.append(i[keep])
        b.append(j[keep])
    a, b = np.concatenate(a), np.concatenate(b)
    _, labels = connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    first = np.full(labels.max() + 1, n)
    np.minimum.at(first, labels, np.arange(n))
    t2 = time.perf_counter()
    return first[labels] != np.arange(n), {"embed": t1 - t0, "group": t2 - t1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[4000, 16000])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    config = SemanticConfig(device=args.device)
    stage = DedupeSemantic(config)
    stage.ensure_setup()
    from sentence_transformers import SentenceTransformer

    device = stage._encoder.device  # the device the stage chose (auto: the GPU torch sees)
    model = SentenceTransformer(str(minilm_dir()), device=device)
    print(f"device {device}; threshold {config.threshold}; LSH {config.bands} x {config.rows}")
    for n in args.n:
        table = table_of(real_texts(args.data, n))
        ours, t_ours = run_stage(stage, table)
        theirs, t_theirs = run_alternative(model, table, config.threshold, config.batch_size)
        for name, t, drops in (("stage", t_ours, ours), ("sentence-transformers + all pairs", t_theirs, theirs)):
            total = sum(t.values())
            print(f"n={n} {name}: {n / total:,.0f} tweets/s ({total:.1f} s: embed {t['embed']:.1f}, "
                  f"group {t['group']:.2f}); drops {int(drops.sum())}")
        print(f"n={n} verdicts that differ: {int((ours != theirs).sum())}")


if __name__ == "__main__":
    main()
