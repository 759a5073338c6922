"""Unlabeled English tweets from the shared data's train-side files: what a teacher model labels for distillation.

Only train and dev files are read; test splits are never touched (most are absent from ../shared/data anyway). Texts
are put into TweetEval's form (mentions -> @user, links -> http, HTML entities decoded, one line), and texts that
appear in the given `exclude` series (the labelled train and val texts) are left out, so no evaluation tweet can come
back as a training row. A missing source is skipped and reported with a count of 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

SEMEVAL_FILES = ("2013train", "2013dev", "2015train", "2016train", "2016dev")  # SemEval-2013..16 task 4A, no test


def semeval_tweets(root: Path) -> list[str]:
    """The texts of SemEval-2013..16 task 4A's train and dev files (English; also the langid supplement's English)."""
    texts = []
    for name in SEMEVAL_FILES:
        path = root / "semeval2017_task4a" / "downloaded" / f"twitter-{name}-A.tsv"
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                fields = line.split("\t")
                if len(fields) >= 3:
                    texts.append(fields[2])
    return texts


def _crisislex(root: Path) -> list[str]:
    files = sorted((root / "crisislex").glob("CrisisLexT6/*/*-ontopic_offtopic.csv")) + sorted(
        (root / "crisislex").glob("CrisisLexT26/*/*-tweets_labeled.csv")
    )
    frames = [pl.read_csv(f, encoding="utf8-lossy", infer_schema=False, truncate_ragged_lines=True) for f in files]
    return [text for frame in frames for text in frame.to_series(1).drop_nulls().to_list()]


def _broad_twitter_corpus(root: Path) -> list[str]:
    texts = []
    for path in sorted((root / "broad_twitter_corpus" / "raw_json").glob("*.json")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                texts.append(json.loads(line)["text"])
            except (ValueError, KeyError, TypeError):
                continue
    return texts


def _xlm_t_english(root: Path) -> list[str]:
    path = root / "xlm_t" / "english" / "train_text.txt"
    return path.read_text(encoding="utf-8").splitlines() if path.is_file() else []


SOURCES = {
    "semeval2013-16 train/dev": semeval_tweets,
    "crisislex T6 + T26": _crisislex,
    "broad_twitter_corpus a, b, e": _broad_twitter_corpus,
    "xlm_t english train": _xlm_t_english,
}


def tweeteval_form(texts: pl.Series) -> pl.Series:
    """Raw tweet texts -> the form TweetEval's texts have (anonymised mentions, one line)."""
    return (
        texts.str.replace_all(r"\u002c", ",", literal=True)  # JSON escapes left in SemEval-2013's files
        .str.replace_all(r"\u2019", "\u2019", literal=True)
        .str.replace_all(r'\"', '"', literal=True)
        .str.replace_all(r"@[A-Za-z0-9_]+", "@user")
        .str.replace_all(r"(?i)https?://\S+", "http")
        .str.replace_all("&amp;", "&", literal=True)
        .str.replace_all("&gt;", ">", literal=True)
        .str.replace_all("&lt;", "<", literal=True)
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )


def unlabeled_tweets(root: Path, exclude: pl.Series, min_chars: int = 10) -> tuple[pl.Series, dict[str, int]]:
    """Distinct texts from every source under `root` (the shared data folder), and how many each source gave."""
    parts, counts = [], {}
    for name, read in SOURCES.items():
        texts = tweeteval_form(pl.Series("text", read(Path(root)), dtype=pl.String))
        parts.append(texts)
        counts[name] = len(texts)
    pool = pl.concat(parts) if parts else pl.Series("text", [], dtype=pl.String)
    known = tweeteval_form(exclude)
    pool = pool.filter((pool.str.len_chars() >= min_chars) & ~pool.is_in(known.implode())).unique(maintain_order=True)
    return pool, counts
