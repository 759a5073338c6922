"""PII scrub: typed placeholders for personal data in the text, a keyed pseudonym for the author.

Detection runs as polars regex passes over the whole text column (transforms/pii_patterns.py says what each pass
looks for). Passes whose matches need a check (checksums, phone metadata) extract candidates column-wide, check each
distinct candidate once in Python, and replace only the confirmed ones: every candidate is wrapped in marker
characters by one regex pass, the confirmed wrapped candidates are swapped for their replacements by one
Aho-Corasick pass, and the markers are removed, so rejected candidates come back byte for byte.

The markers are the Unicode noncharacters U+FDD0/U+FDD1 ("not for interchange"); any already in a row that held
PII are removed with them.

`author_id` becomes HMAC-SHA256(key, author_id), truncated to 128 bits (32 hex digits): stable across runs and
workers for one key, and not recomputable from public ids without it. The key comes from an environment variable
or a Prefect Secret block and lives only in the worker (never in the config, logs or errors).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
from typing import ClassVar

import numpy as np
import phonenumbers
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import field_validator

from transforms.pii_patterns import Rule, UrlMode, rules
from transforms.stages.base import BatchStage, SetupError, StageConfig

log = logging.getLogger(__name__)

OPEN, CLOSE = "\ufdd0", "\ufdd1"
# Public and documented: pseudonyms made with it protect nothing. Only used with allow_dev_key: true.
DEV_KEY = "tweetmill-development-key-not-secret"
MIN_KEY_CHARS = 16
PSEUDONYM_BYTES = 16


class MissingKey(SetupError):
    """No usable pseudonymisation key; the message names where to put one, never a key."""


class Config(StageConfig):
    # "http" replaces each URL with "http" (TimeLMs' convention), "domain" keeps its host, "keep" keeps it, though
    # e-mails, numbers and handles inside it are still scrubbed.
    urls: UrlMode = "http"
    # Regions whose national formats count as phone numbers; "+CC ..." numbers are found for every country.
    phone_regions: tuple[str, ...] = ("US",)
    pseudonym_key_env: str = "TWEETMILL_PII_KEY"
    # Name of a Prefect Secret block holding the key; when set, it is used instead of the environment variable.
    pseudonym_key_secret: str | None = None
    # Demos only: without a configured key, fall back to the public DEV_KEY instead of failing.
    allow_dev_key: bool = False

    @field_validator("phone_regions")
    @classmethod
    def _known_regions(cls, regions: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(regions) - phonenumbers.SUPPORTED_REGIONS)
        if unknown:
            raise ValueError(f"unknown phone regions: {', '.join(unknown)}")
        return regions


class PiiScrub(BatchStage):
    name = "pii"
    Config = Config
    reads = ("text", "author_id")
    writes = (
        pa.field("text", pa.string()),
        pa.field("text_scrubbed", pa.string()),
        pa.field("pii_types", pa.list_(pa.string())),
        pa.field("author_id", pa.string()),
    )
    internal: ClassVar[tuple[str, ...]] = ("text_scrubbed",)

    def preflight(self) -> None:
        self._load_key()  # a missing or short key stops the run before it ingests anything

    def setup(self) -> None:
        self._key = self._load_key()
        self._rules = rules(self.config.urls, self.config.phone_regions)

    def _load_key(self) -> bytes:
        cfg = self.config
        if cfg.pseudonym_key_secret is not None:
            key = _secret_block_value(cfg.pseudonym_key_secret)
            where = f"the Prefect Secret block {cfg.pseudonym_key_secret!r}"
        else:
            key = os.environ.get(cfg.pseudonym_key_env, "")
            where = f"the environment variable {cfg.pseudonym_key_env}"
        if not key and cfg.allow_dev_key:
            log.warning("pii: no pseudonymisation key configured; using the public development key (demo only)")
            return DEV_KEY.encode()
        if not key:
            raise MissingKey(
                f"pii stage needs a pseudonymisation key for author_id: set {where} "
                f"(at least {MIN_KEY_CHARS} characters), or set allow_dev_key: true for demos on non-personal data"
            )
        if len(key) < MIN_KEY_CHARS:
            raise MissingKey(f"the pseudonymisation key in {where} is too short (needs {MIN_KEY_CHARS}+ characters)")
        return key.encode()

    def annotate(self, table: pa.Table) -> pa.Table:
        self.ensure_setup()
        texts = pl.Series("text", table.column("text"))
        texts, found = scrub(texts, self._rules)
        frame = pl.DataFrame(found)
        kinds = sorted(found)  # pii_types comes out sorted because the list is built in this order
        pii_types = frame.select(
            pl.concat_list([pl.when(pl.col(k)).then(pl.lit(k)) for k in kinds]).list.drop_nulls()
        ).to_series()
        text = texts.to_arrow().cast(pa.string())
        pii_types = pii_types.to_arrow().cast(pa.list_(pa.string()))
        authors = self.pseudonymise(table.column("author_id"))
        return pa.Table.from_arrays([text, text, pii_types, authors], schema=pa.schema(self.writes))

    def pseudonymise(self, ids: pa.ChunkedArray | pa.Array) -> pa.Array:
        """HMAC each distinct id once (authors repeat across tweets) and spread the results back; nulls stay null."""
        ids = pc.cast(ids, pa.string())
        if isinstance(ids, pa.ChunkedArray):
            ids = ids.combine_chunks()
        distinct = pc.unique(ids).drop_null()
        digests = pa.array(
            [hmac.digest(self._key, v.encode(), hashlib.sha256)[:PSEUDONYM_BYTES].hex() for v in distinct.to_pylist()],
            pa.string(),
        )
        return pc.take(digests, pc.index_in(ids, value_set=distinct))


# A reject's excerpt is raw input: when a pipeline scrubs PII, the excerpt published in the rejects table keeps the
# record's shape (JSON field names, quotes, punctuation, where it broke off) and loses its content (letters -> x,
# digits -> 0). The source file and line point the operator at the record itself.
_FIELD_NAME = r'"([A-Za-z_][A-Za-z0-9_]*)"\s*:'
_EXCERPT_TOKENS = _FIELD_NAME + r'|[^"]+|"'


def mask_excerpts(excerpts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Reject excerpts with their content masked and the tweet payloads' JSON field names kept, vectorized. Any
    other key may be data (an export keyed by user names, say) and is masked like content."""
    masked = pl.element().str.replace_all(r"[\p{L}\p{M}]", "x").str.replace_all(r"\p{N}", "0")
    name = pl.element().str.extract(f"^{_FIELD_NAME}$", 1)
    keep = name.is_in(pl.lit(pl.Series(sorted(_payload_field_names()), dtype=pl.String)).implode()).fill_null(False)
    tokens = pl.Series(excerpts).cast(pl.String).str.extract_all(_EXCERPT_TOKENS)
    return tokens.list.eval(pl.when(keep).then(pl.element()).otherwise(masked)).list.join("").to_arrow()


@functools.cache
def _payload_field_names() -> frozenset[str]:
    """Every field name of the payloads the readers know: their raw schemas (nested), the keys they classify
    records by, and the column names of flat exports."""
    from transforms.readers import activity, archive, classify, records, tabular, v1, v2

    names: set[str] = set()

    def walk(typ: pa.DataType) -> None:
        if pa.types.is_struct(typ):
            for field in typ:
                names.add(field.name)
                walk(field.type)
        elif pa.types.is_list(typ) or pa.types.is_large_list(typ):
            walk(typ.value_type)

    for schema in (v1.RAW, v2.RAW, activity.RAW, archive.NOTE_RAW):
        walk(pa.struct(list(schema)))
    names |= classify.TEXT_KEYS | classify.PAGE_KEYS | classify.ACTIVITY_MARKERS | classify.V1_MARKERS
    names |= tabular.MARKERS | set(records.GUARDS) | {a for aliases in tabular.ALIASES.values() for a in aliases}
    return frozenset(names | _API_FIELDS)


# Fields of the Twitter APIs' tweet and user objects that the readers do not parse but a broken record shows.
_API_FIELDS = frozenset((
    "screen_name", "name", "username", "description", "location", "url", "protected", "verified", "followers_count",
    "friends_count", "listed_count", "favourites_count", "statuses_count", "profile_image_url", "profile_image_url_https",
    "source", "truncated", "favorited", "retweeted", "possibly_sensitive", "display_text_range", "place", "coordinates",
    "geo", "contributors", "is_quote_status", "filter_level", "timestamp_ms", "in_reply_to_user_id",
    "in_reply_to_user_id_str", "in_reply_to_screen_name", "in_reply_to_status_id", "quoted_status",
    "quoted_status_id", "quoted_status_permalink", "hashtags", "urls", "user_mentions", "symbols", "media", "indices",
    "expanded_url", "display_url", "extended_entities", "public_metrics", "edit_history_tweet_ids",
    "context_annotations", "attachments", "referenced_tweets", "includes", "users", "tweets", "id", "type", "object",
    "actor", "verb", "postedTime", "link", "generator", "body", "tweet", "errors", "title", "detail",
))


def _secret_block_value(block_name: str) -> str:
    """Read the key from a Prefect Secret block; a failure names the block and the error type, never a value."""
    from prefect.blocks.system import Secret

    try:
        return Secret.load(block_name).get()
    except Exception as exc:  # noqa: BLE001 - re-raised without a message that could echo block contents
        raise MissingKey(f"could not read the Prefect Secret block {block_name!r} ({type(exc).__name__})") from None


def scrub(texts: pl.Series, rule_list: list[Rule]) -> tuple[pl.Series, dict[str, pl.Series]]:
    """Run the rules in order; returns the scrubbed texts and, per PII type, which rows had it replaced."""
    found: dict[str, pl.Series] = {}
    for rule in rule_list:
        if rule.replacement is not None:
            new = texts.str.replace_all(rule.pattern, rule.replacement)
            hit = (new != texts).fill_null(False)
        else:
            new, hit = _scrub_validated(texts, rule)
        texts = new
        found[rule.kind] = found[rule.kind] | hit if rule.kind in found else hit
    return texts, found


def _scrub_validated(texts: pl.Series, rule: Rule) -> tuple[pl.Series, pl.Series]:
    """Replace the candidates of `rule` that its check confirms; the check runs once per distinct candidate."""
    hit = np.zeros(len(texts), dtype=bool)
    candidates = texts.str.extract_all(rule.pattern)
    rows = (candidates.list.len() > 0).fill_null(False).arg_true()
    if len(rows) == 0:
        return texts, pl.Series(hit)
    candidates = candidates.gather(rows)
    replacements = {c: r for c in candidates.explode().unique().to_list() if (r := rule.scrub(c)) != c}
    if not replacements:
        return texts, pl.Series(hit)
    confirmed = candidates.list.eval(pl.element().is_in(pl.Series(list(replacements), dtype=pl.String))).list.any()
    rows = rows.filter(confirmed)
    new = (
        texts.gather(rows)
        .str.replace_all(rule.pattern, OPEN + "${0}" + CLOSE)
        .str.replace_many({OPEN + c + CLOSE: r for c, r in replacements.items()})
        .str.replace_all(OPEN, "", literal=True)
        .str.replace_all(CLOSE, "", literal=True)
    )
    hit[rows.to_numpy()] = True
    return texts.clone().scatter(rows, new), pl.Series(hit)
