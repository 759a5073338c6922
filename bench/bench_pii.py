"""Throughput of the pii stage on one core, against the obvious alternative: a per-tweet Python loop.

Tweets are generated from templates (no real data): 8-24 common words, with mentions (~35%), t.co links (~25%),
PII-looking numbers that are not PII (~15%: dates, prices, order numbers...) and real PII (~5%, unique values, so
every candidate needs its own check). The stage runs on the whole set in engine-sized tables; the baseline runs
Python `re` with the same patterns and checks, tweet by tweet, with phonenumbers.PhoneNumberMatcher over each
tweet, on a subsample. The process is pinned to one core; CPU seconds are reported beside wall seconds because the
machine may be shared.

    .venv/bin/python bench/bench_pii.py [--tweets 1000000] [--batch 250000] [--baseline 20000]
"""

from __future__ import annotations

import os

os.environ["POLARS_MAX_THREADS"] = "1"  # one core: set before polars is imported
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import phonenumbers  # noqa: E402
import pyarrow as pa  # noqa: E402
from pii_eval import LOOKALIKES, MAKERS  # noqa: E402

from transforms.pii_patterns import PLACEHOLDERS, rules  # noqa: E402
from transforms.stages.pii import PiiScrub  # noqa: E402

WORDS = (
    "the be to of and a in that have it for not on with he as you do at this but his by from they we say her she or "
    "an will my one all would there their what so up out if about who get which go me when make can like time no just "
    "him know take people into year your good some could them see other than then now look only come its over think "
    "also back after use two how our work first well way even new want because any these give day most us great game "
    "tonight tomorrow news storm flood help rain city police thanks love happy sad watch live update breaking"
).split()


def make_tweets(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    pii = list(MAKERS.values())
    lookalikes = list(LOOKALIKES.values())
    tweets = []
    for _ in range(n):
        words = rng.choices(WORDS, k=rng.randrange(8, 25))
        if rng.random() < 0.35:
            words.insert(rng.randrange(len(words) + 1), "@" + rng.choice(WORDS) + str(rng.randrange(1000)))
        if rng.random() < 0.25:
            words.append("https://t.co/" + "".join(rng.choices("abcdefghijkLMNOP0123456789", k=10)))
        if rng.random() < 0.15:
            words.insert(rng.randrange(len(words) + 1), rng.choice(lookalikes)(rng))
        if rng.random() < 0.05:
            words.insert(rng.randrange(len(words) + 1), rng.choice(pii)(rng))
        tweets.append(" ".join(words))
    return tweets


def baseline(texts: list[str]) -> list[str]:
    """The obvious alternative: per tweet, `re.sub` for each rule, phonenumbers' matcher over the whole tweet."""
    compiled = []
    for rule in rules("http", ("US",)):
        if rule.kind == "phone":
            continue
        pattern = re.compile(rule.pattern)
        if rule.replacement is not None:
            compiled.append((pattern, rule.replacement.replace("${1}", r"\g<1>")))
        else:
            compiled.append((pattern, lambda m, scrub=rule.scrub: scrub(m.group())))
    out = []
    for text in texts:
        for pattern, replacement in compiled:
            text = pattern.sub(replacement, text)
        for match in reversed(list(phonenumbers.PhoneNumberMatcher(text, "US"))):
            text = text[: match.start] + PLACEHOLDERS["phone"] + text[match.end :]
        out.append(text)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tweets", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=250_000, help="rows per table, as an engine would pass them")
    parser.add_argument("--baseline", type=int, default=20_000, help="subsample size for the per-tweet loop")
    args = parser.parse_args()

    tweets = make_tweets(args.tweets)
    authors = [str(i % 50_000) for i in range(args.tweets)]
    stage = PiiScrub(PiiScrub.Config(allow_dev_key=True))
    stage.ensure_setup()
    tables = [
        pa.table({"text": tweets[i : i + args.batch], "author_id": authors[i : i + args.batch]})
        for i in range(0, args.tweets, args.batch)
    ]
    start, cpu = time.perf_counter(), time.process_time()
    outputs = [stage.annotate(t) for t in tables]
    stage_s, stage_cpu = time.perf_counter() - start, time.process_time() - cpu
    scrubbed = [s for out in outputs for s in out.column("text").to_pylist()]
    with_pii = sum(len(types) > 0 for out in outputs for types in out.column("pii_types").to_pylist())

    sample = tweets[: args.baseline]
    start, cpu = time.perf_counter(), time.process_time()
    expected = baseline(sample)
    baseline_s, baseline_cpu = time.perf_counter() - start, time.process_time() - cpu
    agree = sum(a == b for a, b in zip(expected, scrubbed)) / len(sample)

    print(json.dumps({
        "tweets": args.tweets,
        "batch": args.batch,
        "rows_with_pii_types": with_pii,
        "stage_seconds": round(stage_s, 2),
        "stage_tweets_per_s": round(args.tweets / stage_s),
        "stage_tweets_per_cpu_s": round(args.tweets / stage_cpu),
        "baseline_tweets": len(sample),
        "baseline_seconds": round(baseline_s, 2),
        "baseline_tweets_per_s": round(len(sample) / baseline_s),
        "baseline_tweets_per_cpu_s": round(len(sample) / baseline_cpu),
        "speedup_cpu": round((args.tweets / stage_cpu) / (len(sample) / baseline_cpu), 1),
        "same_output_as_baseline": round(agree, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
