"""Large deterministic benchmark corpora: v2 tweets with controlled shares of exact duplicates, near duplicates and
retweets, for every benchmark to share.

    .venv/bin/python bench/corpus.py /tmp/bench_v2.jsonl --n 1000000 [--seed 0]

Texts are word salad drawn from the per-language word frequencies of the bundled real tweets (transforms.demo's
Vocabulary), so language ID and shingling see real words in eight languages; near duplicates get transforms.demo's
edits. Everything is vectorised with numpy and polars, JSON included (polars encodes the structs).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transforms.demo import (  # noqa: E402
    DAY_MS, NEAR_DUP_KINDS, RT_MAX_CHARS, SPAN_MS, START_MS, Vocabulary, load_samples, near_duplicates, snowflake_ids,
)
from transforms.schema import TWEET_SCHEMA, conform  # noqa: E402

LANG_WEIGHTS = {"en": 0.40, "es": 0.13, "pt": 0.10, "ar": 0.08, "fr": 0.08, "de": 0.07, "it": 0.07, "hi": 0.07}
ROLES = ("unique", "exact", "near", "retweet")
CHUNK_ROWS = 250_000


@functools.cache
def _vocabulary() -> Vocabulary:
    return Vocabulary.from_samples(load_samples())


def v2_frame(n: int, seed: int = 0, dup_rate: float = 0.1, near_dup_rate: float = 0.1,
             retweet_rate: float = 0.05) -> pl.DataFrame:
    """The corpus as rows with their planted role: id, text, ms, author_id, lang, metrics, role, source, near_kind.

    role "exact": the same text as its source row; "near": one edit of it; "retweet": "RT @u<author>: text" with the
    source's id as referenced tweet. Sources are always "unique" rows and always older than the rows copying them.
    Near-duplicate and retweet sources are drawn without replacement, so no two planted rows collide.
    """
    sizes = [round(rate * n) for rate in (dup_rate, near_dup_rate, retweet_rate)]
    n_unique = n - sum(sizes)
    if n_unique < max(sizes[1:]):
        raise ValueError("the rates leave too few unique tweets to copy from")
    rng = np.random.default_rng(seed)
    vocab = _vocabulary()
    role = rng.permutation(np.repeat(np.arange(len(ROLES)), [n_unique, *sizes]))
    unique_rows = np.flatnonzero(role == 0)
    source = np.full(n, -1)
    for code, replace in ((1, True), (2, False), (3, False)):
        rows = np.flatnonzero(role == code)
        source[rows] = rng.choice(unique_rows, len(rows), replace=replace)
    copied = source >= 0

    lang_table = vocab.lang_index(pl.Series(list(LANG_WEIGHTS)))
    lang_idx = lang_table[rng.choice(len(LANG_WEIGHTS), n, p=list(LANG_WEIGHTS.values()))]
    lang_idx[copied] = lang_idx[source[copied]]
    n_authors = max(1000, n // 20)
    author = (n_authors * rng.random(n) ** 2).astype(np.int64)
    author_ids = snowflake_ids(1_293_840_000_000 + rng.integers(0, 11 * 365 * DAY_MS, n_authors), rng)
    ms = START_MS + rng.integers(0, SPAN_MS, n)
    ms[copied] = ms[source[copied]] + 1000 + rng.exponential(DAY_MS, copied.sum()).astype(np.int64)

    text = pl.Series("text", [None] * n, dtype=pl.String).scatter(unique_rows, vocab.texts(rng, lang_idx[unique_rows]))
    near_rows = np.flatnonzero(role == 2)
    near_text, near_kind = near_duplicates(text.gather(source[near_rows]), lang_idx[near_rows], vocab, rng)
    src = np.maximum(source, 0)
    frame = pl.DataFrame({
        "id": snowflake_ids(ms, rng), "ms": ms, "author_id": author_ids.gather(author),
        "lang": pl.Series(vocab.langs).gather(lang_idx), "role": np.array(ROLES)[role], "source": source,
        "near_kind": pl.Series([None] * n, dtype=pl.String).scatter(near_rows, np.array(NEAR_DUP_KINDS)[near_kind]),
        "text": text.scatter(near_rows, near_text), "source_text": text.gather(src),
        "source_user": pl.Series(author[src]).cast(pl.String),
        "retweet_count": rng.geometric(0.3, n) - 1, "reply_count": rng.geometric(0.6, n) - 1,
        "like_count": rng.geometric(0.1, n) - 1, "quote_count": rng.geometric(0.8, n) - 1,
    })
    retweet = pl.concat_str([pl.lit("RT @u"), pl.col("source_user"), pl.lit(": "), pl.col("source_text")])
    retweet = pl.when(retweet.str.len_chars() > RT_MAX_CHARS).then(
        retweet.str.slice(0, RT_MAX_CHARS - 1) + pl.lit("…")).otherwise(retweet)
    return frame.with_columns(
        text=pl.when(pl.col("role") == "exact").then("source_text")
        .when(pl.col("role") == "retweet").then(retweet).otherwise("text"),
        source_id=pl.when(pl.col("source") >= 0).then(pl.col("id").gather(pl.col("source").clip(lower_bound=0))),
    ).drop("source_text", "source_user")


def _json_lines(frame: pl.DataFrame) -> pl.Expr:
    """v2 tweet objects as JSON text; retweets get referenced_tweets, other tweets lack the key as in the API."""
    tweet = pl.struct(
        "id", "text", pl.from_epoch("ms", time_unit="ms").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").alias("created_at"),
        "author_id", pl.col("id").alias("conversation_id"), "lang",
        pl.struct("retweet_count", "reply_count", "like_count", "quote_count").alias("public_metrics"),
        pl.concat_list("id").alias("edit_history_tweet_ids"),
    ).struct.json_encode()
    reference = pl.concat_str([tweet.str.head(-1), pl.lit(',"referenced_tweets":[{"type":"retweeted","id":"'),
                               pl.col("source_id"), pl.lit('"}]}')])
    return pl.when(pl.col("role") == "retweet").then(reference).otherwise(tweet).alias("line")


def write_v2_jsonl(path: str | Path, n: int, seed: int = 0, dup_rate: float = 0.1, near_dup_rate: float = 0.1,
                   retweet_rate: float = 0.05) -> dict:
    """Write n v2 tweet objects, one per line (~330 bytes each); return what was planted, for checks and reports."""
    frame = v2_frame(n, seed, dup_rate, near_dup_rate, retweet_rate)
    path = Path(path)
    with path.open("wb") as out:
        for start in range(0, n, CHUNK_ROWS):
            chunk = frame.slice(start, CHUNK_ROWS)
            chunk.select(_json_lines(chunk)).write_csv(out, include_header=False, quote_style="never")
    roles = dict(frame.group_by("role").len().iter_rows())
    return {
        "path": str(path), "n": n, "seed": seed, "bytes": path.stat().st_size,
        "exact_duplicates": roles.get("exact", 0), "near_duplicates": roles.get("near", 0),
        "retweets": roles.get("retweet", 0),
        "languages": dict(frame.group_by("lang").len().sort("lang").iter_rows()),
    }


def write_text_corpus(n: int, seed: int = 0, dup_rate: float = 0.1, near_dup_rate: float = 0.1) -> pa.Table:
    """The same corpus as canonical rows (TWEET_SCHEMA), for stage benchmarks that skip reading; no retweets."""
    frame = v2_frame(n, seed, dup_rate, near_dup_rate, retweet_rate=0.0)
    table = frame.select(
        "id", "text", pl.from_epoch("ms", time_unit="ms").dt.replace_time_zone("UTC").alias("created_at"),
        "author_id", pl.col("id").alias("conversation_id"), pl.col("lang").alias("lang_hint"),
        "retweet_count", "reply_count", "like_count", "quote_count", pl.lit("bench").alias("source_format"),
    ).to_arrow()
    return conform(table, TWEET_SCHEMA)


def corpus_file(folder: Path, n: int) -> Path:
    """The shared n-tweet v2 corpus in `folder` (seed 0), written on first use and reused by every benchmark."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"v2_{n}.jsonl"
    if not path.exists():
        write_v2_jsonl(path, n, seed=0)
    return path


def normalized_parts(folder: Path, n: int, part_rows: int) -> list[Path]:
    """write_text_corpus's n rows through the normalize stage, as working parts of `part_rows` rows in `folder`: the
    input of the benchmarks that time one engine step side by side."""
    from transforms.engines.common import apply_batch_stage
    from transforms.engines.staging import PartWriter
    from transforms.stages.normalize import Normalize

    normalize = Normalize()
    normalize.ensure_setup()
    writer = PartWriter(folder, part_rows)
    writer.add(apply_batch_stage(normalize, write_text_corpus(n))[0])
    return writer.close()


def step_arguments(doc: str) -> argparse.Namespace:
    """The command line of those benchmarks: --n rows, --part-rows, --rounds of the alternating settings, --json."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--part-rows", type=int, default=262_144)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    return parser.parse_args()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dup-rate", type=float, default=0.1)
    parser.add_argument("--near-dup-rate", type=float, default=0.1)
    parser.add_argument("--retweet-rate", type=float, default=0.05)
    args = parser.parse_args()
    start = time.perf_counter()
    stats = write_v2_jsonl(args.path, args.n, args.seed, args.dup_rate, args.near_dup_rate, args.retweet_rate)
    seconds = time.perf_counter() - start
    print(f"{stats['n']:,} tweets, {stats['bytes'] / 1e6:.0f} MB ({stats['bytes'] / stats['n']:.0f} B/tweet) "
          f"in {seconds:.1f} s ({stats['n'] / seconds:,.0f} tweets/s); exact {stats['exact_duplicates']:,}, "
          f"near {stats['near_duplicates']:,}, retweets {stats['retweets']:,}")


if __name__ == "__main__":
    main()

