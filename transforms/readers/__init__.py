"""Input readers: raw tweet dumps in any supported format -> batches of canonical tweets (TWEET_SCHEMA) plus
rejects (REJECT_SCHEMA) that say what could not be read and why. Nothing is dropped silently.

    for batch in read_inputs(["dumps/*.jsonl.gz", "archive/tweets.js"], ReaderOptions()):
        batch.tweets, batch.rejects

Modules: reader (detection, batching), pieces (large files cut into byte ranges or row groups, for Spark and Beam),
sources (paths, fingerprints, decompression), jsonl (JSON lines: pyarrow fast path, orjson slow path), documents
(whole JSON documents), delimited (CSV/TSV), parquet; classify (what a parsed JSON value holds); records (record
kinds and the mapping both paths share); one module per record kind: v1, v2, activity, archive, tabular (flat records
by column name); fields and timestamps (vectorized helpers).
"""

from transforms.readers.base import InputError, ReadBatch, ReaderOptions
from transforms.readers.reader import read_inputs
from transforms.readers.sources import expand_inputs, fingerprint

__all__ = ["InputError", "ReadBatch", "ReaderOptions", "expand_inputs", "fingerprint", "read_inputs"]
