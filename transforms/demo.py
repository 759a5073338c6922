"""The demo corpus: ~24k tweets in the raw formats users bring, with every problem the pipeline exists to fix.

Built only from what ships in the repo (transforms/demo_data: real XLM-T and CrisisLex tweets, scrubbed; see its
NOTICE.md), so `tweetmill demo` runs offline on any machine. Deterministic: the same seed gives the same bytes.

Planted: pure retweets (v1.1 retweeted_status, v2 referenced_tweets, "RT @x:" text), exact duplicates (same text, or
the same text with another link), near duplicates (one edit each), toxic lines (synthetic), synthetic PII (reserved
e-mail domains, fictional phone ranges, documentation IPs, published test card numbers, IBANs of non-existent banks)
and malformed records. `write_demo_corpus` returns a manifest with the planted counts and, per planted row, its kind
and source, so tests can hold each stage to what it should find.

The word model and the near-duplicate edits are also what bench/corpus.py builds its large corpora from.
"""

from __future__ import annotations

import gzip
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import zstandard

DEMO_DATA = Path(__file__).with_name("demo_data")
SAMPLE_FILES = {"xlm_t": "xlm_t_sample.jsonl.gz", "crisislex": "crisislex_sample.jsonl.gz"}

TWITTER_EPOCH_MS = 1_288_834_974_657
START_MS = 1_672_531_200_000  # 2023-01-01T00:00:00Z
SPAN_MS = 181 * 86_400_000  # the first half of 2023
DAY_MS = 86_400_000

BASE62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
EMOJI = ("😂", "❤️", "🙏", "🔥", "😭", "👍", "😍", "🙄", "💯", "✨", "🤔", "😅")
PUNCTUATION = ("!!", "!!!", "?!", "...")
NEAR_DUP_KINDS = ("word_edit", "hashtag", "link", "emoji", "case", "punctuation", "truncation")
_LINK = NEAR_DUP_KINDS.index("link")
TRAILING_LINKS = r"((?:\s*https?://\S+)+)$"

# Written for this project (TweetEval's offensive texts carry no clear redistribution licence). Two different
# phrases make one toxic tweet, so toxic tweets share at most half their words and stay apart under MinHash.
TOXIC_PHRASES = (
    "you are a worthless piece of garbage",
    "shut up you stupid idiot",
    "nobody cares what you think, you pathetic loser",
    "go to hell you disgusting scumbag",
    "fuck off and stay off, moron",
    "what a brainless clown, delete your account",
    "you're an ugly waste of oxygen",
    "crawl back under your rock you filthy rat",
    "this bitch is too dumb to tie her shoes",
    "you absolute dumbass, learn to read",
    "eat shit you lying piece of trash",
    "stupid fucking idiot, get lost",
    "what a spineless coward, pathetic",
    "shut your ugly mouth, nobody asked you",
    "you braindead troll, get a life",
    "disgusting lowlife, you make me sick",
    "you're a fucking joke and everyone laughs at you",
    "screw you and your idiot friends",
    "you dumb bastard, go back to school",
    "useless asshole, you ruin everything",
)

PII_KINDS = ("email", "phone", "ip", "card", "iban")
PII_TEMPLATES = {  # per language: one sentence per PII kind, "{}" is the value
    "en": ("email me at {}", "call me on {}", "server {} keeps timing out", "my card {} got charged twice",
           "refund to IBAN {} please"),
    "es": ("escríbeme a {}", "llámame al {}", "el servidor {} no responde",
           "me cobraron dos veces en la tarjeta {}", "devolución al IBAN {} por favor"),
    "fr": ("écris-moi à {}", "appelle-moi au {}", "le serveur {} ne répond plus",
           "ma carte {} a été débitée deux fois", "remboursez sur l'IBAN {} svp"),
    "de": ("schreib mir an {}", "ruf mich an unter {}", "Server {} antwortet nicht",
           "meine Karte {} wurde doppelt belastet", "bitte auf IBAN {} überweisen"),
    "it": ("scrivimi a {}", "chiamami al {}", "il server {} non risponde",
           "la mia carta {} è stata addebitata due volte", "rimborso sull'IBAN {} grazie"),
    "pt": ("me escreve em {}", "me liga no {}", "o servidor {} caiu de novo", "meu cartão {} foi cobrado duas vezes",
           "reembolso para o IBAN {} por favor"),
}
FIRST_NAMES = ("alex", "sam", "jordan", "maria", "lucas", "chloe", "ahmed", "priya", "kenji", "lena", "omar", "sofia")
LAST_NAMES = ("smith", "garcia", "martin", "rossi", "muller", "silva", "khan", "dubois", "tanaka", "novak")
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")  # RFC 2606: reserved, never anyone's mailbox
TEST_CARDS = (  # card numbers the payment processors publish for testing (all pass the Luhn check)
    "4242424242424242", "4000056655665556", "5555555555554444", "5200828282828210",
    "2223003122003222", "6011111111111117", "3566002020360505", "4012888888881881",
)
IBAN_COUNTRIES = {"DE": 18, "AT": 16}  # BBAN digits; bank codes here start with 0, which no real bank code does

FORMATS = ("v2_pages", "v2_flat", "v1_search", "v1_array", "archive", "csv")
FORMAT_WEIGHTS = (0.30, 0.25, 0.10, 0.10, 0.10, 0.15)
# Where each retweet style can go; the third style, plain "RT @x:" text, goes to any format.
RETWEET_STYLES = {"v1": ("v1_search", "v1_array"), "v2": ("v2_pages", "v2_flat")}
FILES = {
    "v2_pages": ("v2_pages.jsonl", None),
    "v2_flat": ("v2_flat.jsonl.zst", "zstd"),
    "v1_search": ("v1_search.json.gz", "gzip"),
    "v1_array": ("v1_timeline.json", None),
    "archive": ("archive/data/tweets.js", None),
    "csv": ("export.csv", None),
}
CSV_COLUMNS = {"id": "tweet_id", "created_at": "date", "author_id": "user_id", "lang_hint": "language",
               "retweet_count": "retweets", "like_count": "likes", "text": "content"}
CSV_DATETIME = "%Y-%m-%d %H:%M:%S"
TRUNCATED_FILE = "truncated.jsonl.gz"
TRUNCATED_RECORDS = 40
RT_MAX_CHARS = 140


def load_samples() -> pl.DataFrame:
    """The bundled real tweets: columns source ("xlm_t" | "crisislex"), lang, text."""
    frames = []
    for source, name in SAMPLE_FILES.items():
        raw = gzip.decompress((DEMO_DATA / name).read_bytes())
        frames.append(pl.read_ndjson(io.BytesIO(raw)).select(pl.lit(source).alias("source"), "lang", "text"))
    return pl.concat(frames)


def tco_links(rng: np.random.Generator, n: int) -> pl.Series:
    """Made-up t.co links, 10 random base62 characters each, like the real shortener's."""
    codes = BASE62[rng.integers(0, len(BASE62), (n, 10))].view("S10").ravel()
    return pl.Series("link", codes).cast(pl.String).str.replace(r"^", "https://t.co/")


def snowflake_ids(ms: np.ndarray, rng: np.random.Generator) -> pl.Series:
    """Twitter-style ids (time in the high bits), so id order follows time. The low 22 bits are a permutation of the
    row numbers: unique ids for up to 2**22 rows; beyond, only rows in the same millisecond can clash."""
    low = rng.permutation(len(ms)).astype(np.uint64) % np.uint64(1 << 22)
    ids = ((ms.astype(np.int64) - TWITTER_EPOCH_MS).astype(np.uint64) << np.uint64(22)) | low
    return pl.Series("id", ids).cast(pl.String)


@dataclass(frozen=True)
class Vocabulary:
    """Word frequencies per language, learnt from the bundled XLM-T tweets: text that language ID still recognises.

    `table[k, q]` is the word at quantile q of language k's word distribution, so drawing a word for each of millions
    of rows, in any mix of languages, is one random integer and one lookup per word.
    """

    langs: tuple[str, ...]
    words: pl.Series
    table: np.ndarray

    QUANTILES = 1 << 18

    @classmethod
    def from_samples(cls, samples: pl.DataFrame, size: int = 4000) -> Vocabulary:
        counts = (
            samples.filter(pl.col("source") == "xlm_t")
            .select("lang", pl.col("text").str.to_lowercase().str.extract_all(r"\p{L}[\p{L}\p{M}'’]*").alias("word"))
            .explode("word")
            .drop_nulls()
            .filter(~pl.col("word").is_in(["user", "http", "https", "rt"]))
            .group_by("lang", "word")
            .len()
            .sort(["lang", "len", "word"], descending=[False, True, False])
            .group_by("lang", maintain_order=True)
            .head(size)
        )
        langs = tuple(counts["lang"].unique(maintain_order=True))
        quantiles = (np.arange(cls.QUANTILES) + 0.5) / cls.QUANTILES
        table, start = np.empty((len(langs), cls.QUANTILES), dtype=np.int32), 0
        for k, lang in enumerate(langs):
            weights = counts.filter(pl.col("lang") == lang)["len"].to_numpy()
            cdf = np.cumsum(weights) / weights.sum()
            table[k] = start + np.minimum(np.searchsorted(cdf, quantiles, side="right"), len(weights) - 1)
            start += len(weights)
        return cls(langs, counts["word"], table)

    def lang_index(self, langs: pl.Series, default: str = "en") -> np.ndarray:
        """Each row's language block; languages without a block use `default`'s."""
        lookup = {lang: i for i, lang in enumerate(self.langs)}
        return langs.replace_strict(lookup, default=lookup[default], return_dtype=pl.Int64).to_numpy()

    def _draw(self, rng: np.random.Generator, lang_idx: np.ndarray) -> np.ndarray:
        return self.table[lang_idx, rng.integers(0, self.QUANTILES, len(lang_idx))]

    def sample_words(self, rng: np.random.Generator, lang_idx: np.ndarray) -> pl.Series:
        return self.words.gather(self._draw(rng, lang_idx))

    def texts(self, rng: np.random.Generator, lang_idx: np.ndarray, min_words: int = 6,
              max_words: int = 24) -> pl.Series:
        """Tweet-like word salad: word counts uniform in [min_words, max_words], some mentions, links, tags, emoji."""
        n = len(lang_idx)
        lengths = rng.integers(min_words, max_words + 1, n)
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]), pa.int64())
        values = self.sample_words(rng, np.repeat(lang_idx, lengths)).to_arrow()
        frame = pl.DataFrame({
            "body": pl.Series(pa.LargeListArray.from_arrays(offsets, values)).list.join(" "),
            "tag": self.sample_words(rng, lang_idx), "link": tco_links(rng, n),
            "emoji": np.array(EMOJI)[rng.integers(0, len(EMOJI), n)],
            **{f"has_{part}": rng.random(n) < share
               for part, share in (("mention", 0.12), ("tag", 0.10), ("link", 0.15), ("emoji", 0.08))},
        })

        def optional(part: str, prefix: str) -> pl.Expr:
            return pl.when(f"has_{part}").then(pl.lit(prefix) + pl.col(part)).otherwise(pl.lit(""))

        parts = [pl.when("has_mention").then(pl.lit("@user ")).otherwise(pl.lit("")), pl.col("body"),
                 optional("tag", " #"), optional("link", " "), optional("emoji", " ")]
        return frame.select(pl.concat_str(parts).alias("text")).to_series()


def near_duplicates(texts: pl.Series, lang_idx: np.ndarray, vocab: Vocabulary,
                    rng: np.random.Generator) -> tuple[pl.Series, np.ndarray]:
    """One edit per text, kinds drawn uniformly from NEAR_DUP_KINDS; returns (edited texts, kind index per row).

    An edit that would leave the text unchanged (upper-casing Arabic, a swapped word equal to the old one, text too
    short to cut) becomes an appended link. Edits keep links whole: a link with "!!" glued on, upper-cased or cut in
    half still masks to "http" in the dedupe key, which could make the copy an exact duplicate in disguise.
    """
    n = len(texts)
    kinds = rng.integers(0, len(NEAR_DUP_KINDS), n)
    frame = pl.DataFrame({
        "text": texts, "kind": kinds, "word": vocab.sample_words(rng, lang_idx), "link": tco_links(rng, n),
        "emoji": np.array(EMOJI)[rng.integers(0, len(EMOJI), n)],
        "punct": np.array(PUNCTUATION)[rng.integers(0, len(PUNCTUATION), n)],
    })
    text = pl.col("text")
    words = text.str.splitn(" ", 4)
    before_links = text.str.replace(r"https?://.*$", "")
    from_first_link = text.str.extract(r"(https?://.*)$").fill_null("")
    trailing_links = text.str.extract(TRAILING_LINKS).fill_null("")
    cut = text.str.slice(0, text.str.len_chars() * 2 // 3).str.replace(r"\s*https?://\S*$", "").str.strip_chars_end()
    edits = (
        pl.concat_str([words.struct.field("field_0"), words.struct.field("field_1"), pl.col("word"),
                       words.struct.field("field_3")], separator=" "),
        pl.concat_str([text, pl.lit(" #"), pl.col("word")]),
        pl.concat_str([text, pl.lit(" "), pl.col("link")]),
        pl.concat_str([text, pl.lit(" "), pl.col("emoji")]),
        pl.concat_str([before_links.str.to_uppercase(), from_first_link]),
        pl.concat_str([text.str.replace(TRAILING_LINKS, "").str.strip_chars_end(".!?… "), pl.col("punct"),
                       trailing_links]),
        pl.when(cut.str.len_chars() >= 12).then(pl.concat_str([cut, pl.lit("…")])),
    )
    chosen = pl.when(pl.col("kind") == 0).then(edits[0])
    for i, edit in enumerate(edits[1:], start=1):
        chosen = chosen.when(pl.col("kind") == i).then(edit)
    frame = frame.with_columns(chosen.alias("edited")).with_columns(
        unchanged=pl.col("edited").is_null() | (pl.col("edited") == text)
    )
    kinds[frame["unchanged"].to_numpy()] = _LINK
    edited = frame.select(pl.when("unchanged").then(edits[_LINK]).otherwise("edited")).to_series()
    return edited.rename("text"), kinds


def _pii_values(kinds: np.ndarray, rng: np.random.Generator) -> pl.Series:
    """Synthetic PII of each kind; none of it can belong to a real person (see the module docstring)."""
    n = len(kinds)

    def pick(options) -> np.ndarray:
        return np.array(options)[rng.integers(0, len(options), n)]

    def digits(width: int) -> pl.Series:
        return pl.Series(rng.integers(0, 10**width, n)).cast(pl.String).str.zfill(width)

    frame = pl.DataFrame({
        "kind": kinds, "first": pick(FIRST_NAMES), "sep": pick((".", "_", "")), "last": pick(LAST_NAMES),
        "domain": pick(EMAIL_DOMAINS), "d2": digits(2), "d2b": digits(2), "d3": digits(3),
        "phone_style": rng.integers(0, 5, n), "us_area": pick(("(202) 555-01", "(312) 555-01", "+1 415 555 01")),
        "ipv4": rng.random(n) < 0.8, "ip_net": pick(("192.0.2.", "198.51.100.", "203.0.113.")),
        "ip_host": rng.integers(1, 255, n), "ip6_host": rng.integers(1, 0xFFFF, n),
        "card": pick(TEST_CARDS), "card_style": rng.integers(0, 3, n), "iban": _ibans(rng, n),
    })
    col = pl.col
    email = pl.concat_str([col("first"), col("sep"), col("last"), col("d2"), pl.lit("@"), col("domain")])
    # Numbers reserved for fiction: NANPA 555-0100..0199, Ofcom 07700 900xxx and 020 7946 0xxx, ARCEP 06 39 98 xx xx.
    phone = (
        pl.when(col("phone_style") <= 1).then(pl.concat_str([col("us_area"), col("d2")]))
        .when(col("phone_style") == 2).then(pl.concat_str([pl.lit("07700 900"), col("d3")]))
        .when(col("phone_style") == 3).then(pl.concat_str([pl.lit("+44 20 7946 0"), col("d3")]))
        .otherwise(pl.concat_str([pl.lit("06 39 98 "), col("d2"), pl.lit(" "), col("d2b")]))
    )
    # RFC 5737 (IPv4) and RFC 3849 (IPv6) documentation ranges.
    ip = pl.when("ipv4").then(pl.concat_str([col("ip_net"), col("ip_host").cast(pl.String)])).otherwise(
        pl.concat_str([pl.lit("2001:db8::"), col("ip6_host").cast(pl.String)])
    )
    card = (
        pl.when(col("card_style") == 0).then(col("card").str.replace_all(r"(\d{4})", "$1 ").str.strip_chars_end())
        .when(col("card_style") == 1).then(col("card").str.replace_all(r"(\d{4})", "$1-").str.strip_chars_end("-"))
        .otherwise(col("card"))
    )
    value = pl.when(col("kind") == 0).then(email).when(col("kind") == 1).then(phone)
    value = value.when(col("kind") == 2).then(ip).when(col("kind") == 3).then(card).otherwise(col("iban"))
    return frame.select(value.alias("value")).to_series()


def _ibans(rng: np.random.Generator, n: int) -> pl.Series:
    """IBANs with valid ISO 13616 check digits (mod 97), grouped in fours half of the time."""
    parts = []
    for code, width in IBAN_COUNTRIES.items():
        bban = rng.integers(0, 10, (n, width))
        bban[:, 0] = 0
        letters = [ord(c) - ord("A") + 10 for c in code]
        moved = np.array([int(d) for v in letters for d in str(v)] + [0, 0])  # country letters and "00" go last
        remainder = np.zeros(n, dtype=np.int64)
        for column in np.hstack([bban, np.broadcast_to(moved, (n, len(moved)))]).T:
            remainder = (remainder * 10 + column) % 97
        text = (bban + ord("0")).astype(np.uint8).view(f"S{width}").ravel()
        parts.append(pl.concat_str([pl.lit(code), pl.lit(pl.Series(98 - remainder)).cast(pl.String).str.zfill(2),
                                    pl.lit(pl.Series(text).cast(pl.String))]))
    frame = pl.DataFrame({"country": rng.integers(0, len(parts), n), "grouped": rng.random(n) < 0.5})
    iban = pl.when(pl.col("country") == 0).then(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        iban = iban.when(pl.col("country") == i).then(part)
    spaced = iban.str.replace_all(r"(\w{4})", "$1 ").str.strip_chars_end()
    return frame.select(pl.when("grouped").then(spaced).otherwise(iban).alias("iban")).to_series()


@dataclass(frozen=True)
class _Plan:
    """How many rows of each kind a corpus of n tweets gets."""

    n: int

    @property
    def exact(self) -> int:
        return round(self.n * 0.06)

    @property
    def exact_link(self) -> int:  # of `exact`: the same text with another link
        return self.exact // 3

    @property
    def near(self) -> int:
        return round(self.n * 0.06)

    @property
    def retweets(self) -> int:
        return round(self.n * 0.06)

    @property
    def embedded(self) -> int:  # of `retweets`: originals that appear only inside the retweet
        return self.retweets // 4

    @property
    def toxic(self) -> int:
        return min(round(self.n * 0.0125), len(TOXIC_PHRASES) * (len(TOXIC_PHRASES) - 1))

    @property
    def pii(self) -> int:
        return round(self.n * 0.02)

    @property
    def originals(self) -> int:
        return self.n - self.exact - self.near - self.retweets - self.toxic - self.pii


def _fresh_texts(samples: pl.DataFrame, vocab: Vocabulary, needed: int, rng: np.random.Generator) -> pl.DataFrame:
    """`needed` distinct texts (lang, text, synthetic): the bundled tweets shuffled, then word salad if they run out."""
    pool = samples[rng.permutation(samples.height)].select("lang", "text", synthetic=pl.lit(False))
    missing = needed - pool.height
    if missing > 0:
        langs = np.array(vocab.langs)[rng.integers(0, len(vocab.langs), missing * 11 // 10 + 100)]
        extra = pl.DataFrame({"lang": langs, "text": vocab.texts(rng, vocab.lang_index(pl.Series(langs)))})
        extra = extra.unique("text", keep="first", maintain_order=True).filter(~pl.col("text").is_in(pool["text"]))
        pool = pl.concat([pool, extra.head(missing).with_columns(synthetic=pl.lit(True))])
    return pool.head(needed)


def _planted_rows(plan: _Plan, samples: pl.DataFrame, vocab: Vocabulary, rng: np.random.Generator) -> pl.DataFrame:
    """Every tweet of the corpus plus the retweeted originals seen only inside retweets (in_corpus false).

    Columns: lang, text, synthetic, kind, subkind, src (row index of the source tweet, -1 if none), in_corpus.
    Sources of duplicates and retweets are originals that do not themselves start with "RT @".
    """
    fresh = _fresh_texts(samples, vocab, plan.originals + plan.embedded + plan.pii, rng)
    base = fresh.with_columns(kind=pl.lit("original"), subkind=pl.lit(""), src=pl.lit(-1), in_corpus=pl.lit(True))
    originals = base.head(plan.originals)
    embedded = base.slice(plan.originals, plan.embedded).with_columns(kind=pl.lit("embedded"), in_corpus=False)
    head = pl.concat([originals, embedded])

    eligible = originals.with_row_index("row").filter(~pl.col("text").str.starts_with("RT @"))
    with_link = eligible.filter(pl.col("text").str.contains("https://t.co/"))["row"].to_numpy()
    long_enough = eligible.filter(pl.col("text").str.count_matches(r"\S+") >= 6)["row"].to_numpy()
    eligible = eligible["row"].to_numpy()
    texts = originals["text"]

    def derived(src: np.ndarray, text: pl.Series | None, kind: str, subkind) -> pl.DataFrame:
        return pl.DataFrame({"lang": head["lang"].gather(src), "text": text, "synthetic": head["synthetic"].gather(src),
                             "kind": kind, "subkind": subkind, "src": src, "in_corpus": True})

    same = rng.choice(eligible, plan.exact - plan.exact_link)
    linked = rng.choice(with_link, plan.exact_link)
    relinked = pl.DataFrame({"text": texts.gather(linked), "link": tco_links(rng, len(linked))})
    near_src = rng.choice(long_enough, plan.near, replace=False)
    near_text, near_kind = _near_rows(texts, near_src, vocab.lang_index(head["lang"].gather(near_src)), vocab, rng)
    rt_src = np.concatenate([rng.choice(eligible, plan.retweets - plan.embedded, replace=False),
                             plan.originals + np.arange(plan.embedded)])
    rt_style = np.array(["v1", "v2", "text"])[rng.integers(0, 3, plan.retweets)]
    rows = [
        head,
        derived(same, texts.gather(same), "exact_duplicate", "same_text"),
        derived(linked, relinked.select(pl.col("text").str.replace(r"https://t\.co/\w+", pl.col("link"))).to_series(),
                "exact_duplicate", "different_link"),
        derived(near_src, near_text, "near_duplicate", pl.Series(np.array(NEAR_DUP_KINDS)[near_kind])),
        derived(rt_src, None, "retweet", rt_style),  # text comes later, from the source's author: see _retweet_texts
        pl.DataFrame({"lang": "en", "text": _toxic_texts(plan.toxic, rng), "synthetic": True, "kind": "toxic",
                      "subkind": "", "src": -1, "in_corpus": True}),
        _with_pii(base.slice(plan.originals + plan.embedded, plan.pii), rng),
    ]
    return pl.concat([r.select(base.columns).cast(base.schema) for r in rows])


def _near_rows(texts: pl.Series, src: np.ndarray, lang_idx: np.ndarray, vocab: Vocabulary,
               rng: np.random.Generator) -> tuple[pl.Series, np.ndarray]:
    """Near duplicates of texts[src]. The bundle holds natural near duplicates, so an edit may recreate another
    tweet exactly: those copies get an appended link instead."""
    edited, kinds = near_duplicates(texts.gather(src), lang_idx, vocab, rng)
    frame = pl.DataFrame({"edited": edited, "text": texts.gather(src), "link": tco_links(rng, len(src))})
    frame = frame.with_columns(clash=pl.col("edited").is_in(texts))
    kinds[frame["clash"].to_numpy()] = _LINK
    relinked = pl.concat_str(["text", "link"], separator=" ")
    return frame.select(pl.when("clash").then(relinked).otherwise("edited")).to_series(), kinds


def _toxic_texts(n: int, rng: np.random.Generator) -> pl.Series:
    """n distinct replies, each two different TOXIC_PHRASES."""
    m = len(TOXIC_PHRASES)
    pairs = rng.choice(m * (m - 1), n, replace=False)
    first, second = pairs // (m - 1), pairs % (m - 1)
    second = second + (second >= first)
    phrases = pl.Series(TOXIC_PHRASES)
    frame = pl.DataFrame({"a": phrases.gather(first), "b": phrases.gather(second)})
    return frame.select(pl.concat_str([pl.lit("@user "), pl.col("a"), pl.lit(". "), pl.col("b")])).to_series()


def _with_pii(tweets: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Each tweet gets a sentence in its language (English where no template exists) holding one piece of PII."""
    kind = rng.integers(0, len(PII_KINDS), tweets.height)
    templates = pl.DataFrame(
        [(lang, PII_KINDS[k], sentence) for lang, sentences in PII_TEMPLATES.items()
         for k, sentence in enumerate(sentences)],
        schema=["template_lang", "subkind", "sentence"], orient="row",
    )
    tweets = tweets.with_columns(
        subkind=pl.Series(np.array(PII_KINDS)[kind]), value=_pii_values(kind, rng),
        template_lang=pl.when(pl.col("lang").is_in(list(PII_TEMPLATES))).then("lang").otherwise(pl.lit("en")),
    ).join(templates, on=["template_lang", "subkind"], how="left", maintain_order="left")
    sentence = pl.col("sentence").str.replace("{}", pl.col("value"), literal=True)
    return tweets.with_columns(text=pl.concat_str([pl.col("text"), pl.lit(" "), sentence]), kind=pl.lit("pii"))


def _users(n_users: int, rng: np.random.Generator) -> pl.DataFrame:
    """Synthetic accounts; user 0 owns the account archive."""
    created = 1_293_840_000_000 + rng.integers(0, 11 * 365 * DAY_MS, n_users)  # 2011-2021, after the id epoch
    return pl.DataFrame({
        "user_id": snowflake_ids(created, rng),
        "username": pl.Series(np.arange(n_users)).cast(pl.String).str.zfill(5).str.replace("^", "demo_user"),
        "name": pl.Series(np.arange(n_users)).cast(pl.String).str.replace("^", "Demo User "),
    })


def _place(rows: pl.DataFrame, users: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Give every row a file format, an author, a time (copies come after their source), an id and metrics."""
    n = rows.height
    fmt = np.array(FORMATS)[rng.choice(len(FORMATS), n, p=FORMAT_WEIGHTS)]
    for style, formats in RETWEET_STYLES.items():
        mask = ((rows["kind"] == "retweet") & (rows["subkind"] == style)).to_numpy()
        fmt[mask] = np.array(formats)[rng.integers(0, len(formats), mask.sum())]
    fmt = np.where(rows["in_corpus"].to_numpy(), fmt, None)
    author = (users.height * rng.random(n) ** 2).astype(np.int64)
    author[fmt == "archive"] = 0
    src = rows["src"].to_numpy()
    ms = START_MS + rng.integers(0, SPAN_MS, n)
    has_src = src >= 0
    ms[has_src] = ms[src[has_src]] + 1000 + rng.exponential(DAY_MS, has_src.sum()).astype(np.int64)
    metrics = {name: rng.geometric(p, n) - 1 for name, p in
               (("retweet_count", 0.3), ("reply_count", 0.6), ("like_count", 0.1), ("quote_count", 0.8))}
    placed = rows.with_columns(
        id=snowflake_ids(ms, rng), ms=pl.Series(ms), fmt=pl.Series(fmt, dtype=pl.String), author=pl.Series(author),
        **{k: pl.Series(v) for k, v in metrics.items()},
    )
    return _retweet_texts(placed, users)


def _retweet_texts(rows: pl.DataFrame, users: pl.DataFrame) -> pl.DataFrame:
    """Retweets read "RT @author: text", cut to 140 characters with "…" as the API cuts them."""
    src = rows["src"].clip(lower_bound=0)
    full = pl.concat_str([pl.lit("RT @"), users["username"].gather(rows["author"].gather(src)), pl.lit(": "),
                          rows["text"].gather(src)])
    cut = pl.when(full.str.len_chars() > RT_MAX_CHARS).then(full.str.slice(0, RT_MAX_CHARS - 1) + pl.lit("…"))
    return rows.with_columns(text=pl.when(pl.col("kind") == "retweet").then(cut.otherwise(full)).otherwise("text"))


def _malformed_rows(vocab: Vocabulary, rng: np.random.Generator) -> pl.DataFrame:
    """Tweets that go only into broken records: one each for the bad lines, TRUNCATED_RECORDS for the cut file."""
    subkinds = ["broken_json_line", "missing_text", "invalid_utf8"] + ["truncated_gzip"] * TRUNCATED_RECORDS
    lang_idx = rng.integers(0, len(vocab.langs), len(subkinds))
    return pl.DataFrame({
        "text": vocab.texts(rng, lang_idx), "lang": np.array(vocab.langs)[lang_idx], "synthetic": True,
        "kind": "malformed", "subkind": subkinds, "src": -1, "in_corpus": False,
    })


class _Writer:
    """Serialises placed rows into each raw format; a row's retweeted original is another row (its `src`).

    Plain dicts per row are fine for a 24k-tweet demo written once; bench/corpus.py is the vectorised path for
    corpora of millions.
    """

    def __init__(self, rows: pl.DataFrame, users: pl.DataFrame):
        stamp = pl.from_epoch("ms", time_unit="ms")
        self.rows = rows.with_columns(
            iso=stamp.dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
            v1_time=stamp.dt.strftime("%a %b %d %H:%M:%S +0000 %Y"),
            csv_time=stamp.dt.strftime(CSV_DATETIME),
        ).to_dicts()
        self.users = users.to_dicts()

    def indices(self, fmt: str, newest_first: bool = True) -> list[int]:
        picked = [i for i, r in enumerate(self.rows) if r["fmt"] == fmt]
        return sorted(picked, key=lambda i: (self.rows[i]["ms"], self.rows[i]["id"]), reverse=newest_first)

    def retweet_style(self, i: int) -> str | None:
        return self.rows[i]["subkind"] if self.rows[i]["kind"] == "retweet" else None

    def user_v2(self, author: int) -> dict:
        u = self.users[author]
        return {"id": u["user_id"], "username": u["username"], "name": u["name"]}

    def v2(self, i: int, expand: bool = False) -> dict:
        r = self.rows[i]
        tweet = {
            "id": r["id"], "text": r["text"], "created_at": r["iso"], "author_id": self.users[r["author"]]["user_id"],
            "conversation_id": r["id"], "lang": r["lang"],
            "public_metrics": {k: r[k] for k in ("retweet_count", "reply_count", "like_count", "quote_count")},
            "edit_history_tweet_ids": [r["id"]], "possibly_sensitive": False, "reply_settings": "everyone",
        }
        if self.retweet_style(i) == "v2":
            ref = {"type": "retweeted", "id": self.rows[r["src"]]["id"]}
            if expand:  # twarc's flattened shape: the referenced tweet and every author inline
                ref = {**self.v2(r["src"], expand=True), **ref}
            tweet["referenced_tweets"] = [ref]
        if expand:
            tweet["author"] = self.user_v2(r["author"])
        return tweet

    def v2_page(self, page: list[int], number: int) -> dict:
        originals = [self.rows[i]["src"] for i in page if self.retweet_style(i) == "v2"]
        authors = dict.fromkeys(self.rows[i]["author"] for i in page + originals)
        return {
            "data": [self.v2(i) for i in page],
            "includes": {"users": [self.user_v2(a) for a in authors], "tweets": [self.v2(i) for i in originals]},
            "meta": {"newest_id": self.rows[page[0]]["id"], "oldest_id": self.rows[page[-1]]["id"],
                     "result_count": len(page), "next_token": f"b26v89c19zqg8o3fp{number:06d}"},
            "__twarc": {"url": "https://api.twitter.com/2/tweets/search/all?query=demo&max_results=100",
                        "version": "2.14.0", "retrieved_at": "2023-07-02T00:00:00+00:00"},
        }

    def v1(self, i: int) -> dict:
        r, u = self.rows[i], self.users[self.rows[i]["author"]]
        status = {
            "created_at": r["v1_time"], "id": int(r["id"]), "id_str": r["id"], "text": r["text"], "truncated": False,
            "entities": {"hashtags": [], "symbols": [], "user_mentions": [], "urls": []},
            "user": {"id": int(u["user_id"]), "id_str": u["user_id"], "name": u["name"], "screen_name": u["username"]},
            "retweet_count": r["retweet_count"], "favorite_count": r["like_count"], "favorited": False,
            "retweeted": False, "lang": r["lang"],
        }
        if self.retweet_style(i) == "v1":
            status["retweeted_status"] = original = self.v1(r["src"])
            name = original["user"]["screen_name"]
            mention = {"screen_name": name, "name": original["user"]["name"], "id_str": original["user"]["id_str"]}
            status["entities"]["user_mentions"] = [mention | {"indices": [3, 4 + len(name)]}]
        return status

    def archive(self, i: int) -> dict:
        r = self.rows[i]
        return {"tweet": {
            "edit_info": {"initial": {"editTweetIds": [r["id"]], "editsRemaining": "5", "isEditEligible": True}},
            "retweeted": False, "source": '<a href="https://mobile.twitter.com" rel="nofollow">Twitter Web App</a>',
            "entities": {"hashtags": [], "symbols": [], "user_mentions": [], "urls": []},
            "display_text_range": ["0", str(len(r["text"]))], "favorite_count": str(r["like_count"]),
            "id_str": r["id"], "truncated": False, "retweet_count": str(r["retweet_count"]), "id": r["id"],
            "created_at": r["v1_time"], "favorited": False, "full_text": r["text"], "lang": r["lang"],
        }}

    def csv(self, picked: list[int]) -> bytes:
        source = {"id": "id", "created_at": "csv_time", "author_id": "author", "lang_hint": "lang",
                  "retweet_count": "retweet_count", "like_count": "like_count", "text": "text"}
        frame = pl.DataFrame([{CSV_COLUMNS[k]: self.rows[i][v] for k, v in source.items()} for i in picked])
        frame = frame.with_columns(pl.col(CSV_COLUMNS["author_id"]).replace_strict(
            {i: u["user_id"] for i, u in enumerate(self.users)}, return_dtype=pl.String))
        return frame.write_csv().encode()


def _compress(data: bytes, compression: str | None) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=10).compress(data)
    return data


def _jsonl(objects) -> bytes:
    return b"".join(orjson.dumps(o) + b"\n" for o in objects)


def _serialise(w: _Writer, fmt: str, picked: list[int], bad: dict[str, int], rng: np.random.Generator) -> bytes:
    """One file's bytes. The malformed records go where real dumps have them: between good lines."""
    if fmt == "v2_pages":
        pages = [orjson.dumps(w.v2_page(picked[s:s + 100], s // 100)) for s in range(0, len(picked), 100)]
        broken = orjson.dumps(w.v2_page([bad["broken_json_line"]], len(pages)))
        pages.insert(int(rng.integers(1, len(pages))), broken[: len(broken) // 2])  # a line cut mid-record
        return b"\n".join(pages) + b"\n"
    if fmt == "v2_flat":
        lines = [orjson.dumps(w.v2(i, expand=True)) for i in picked]
        no_text = w.v2(bad["missing_text"], expand=True)
        del no_text["text"]
        latin1 = w.v2(bad["invalid_utf8"], expand=True)
        latin1["text"] += " caf\ue000"  # a private-use mark, swapped below for a Latin-1 byte that is not UTF-8
        for record in (orjson.dumps(no_text), orjson.dumps(latin1).replace("\ue000".encode(), b"\xe9")):
            lines.insert(int(rng.integers(1, len(lines))), record)
        return b"\n".join(lines) + b"\n"
    if fmt == "v1_search":
        statuses = [w.v1(i) for i in picked]
        return orjson.dumps({"statuses": statuses, "search_metadata": {
            "completed_in": 0.042, "max_id": statuses[0]["id"], "max_id_str": statuses[0]["id_str"],
            "since_id": 0, "since_id_str": "0", "query": "demo", "count": len(statuses),
            "next_results": f"?max_id={int(statuses[-1]['id']) - 1}&q=demo&count={len(statuses)}",
            "refresh_url": f"?since_id={statuses[0]['id_str']}&q=demo",
        }})
    if fmt == "v1_array":
        return orjson.dumps([w.v1(i) for i in picked])
    if fmt == "archive":
        tweets = orjson.dumps([w.archive(i) for i in picked], option=orjson.OPT_INDENT_2)
        return b"window.YTD.tweets.part0 = " + tweets
    return w.csv(picked)


def write_demo_corpus(out_dir: Path, n_tweets: int = 24000, seed: int = 7) -> dict:
    """Write the demo's raw input files under out_dir and return the manifest:

    files (path relative to out_dir, format, compression, tweets; the CSV's column map, the archive's account id),
    csv_columns (canonical name -> CSV column, as ReaderOptions.csv_columns takes it), planted (counts per kind)
    and truth (columns id, kind, subkind, source_id for every planted tweet; plain originals are left out).
    n_tweets counts the readable tweets across the files; the malformed records and the truncated file come on top.
    The bundled samples cover about 24,000 tweets; beyond that, originals are filled up with word salad.
    """
    if n_tweets < 1000:
        raise ValueError("the demo corpus needs at least 1,000 tweets to plant every kind of problem")
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    samples = load_samples()
    vocab = Vocabulary.from_samples(samples)
    users = _users(max(200, n_tweets // 6), rng)
    planted = _planted_rows(_Plan(n_tweets), samples, vocab, rng)
    rows = pl.concat([planted, _malformed_rows(vocab, rng).select(planted.columns).cast(planted.schema)])
    rows = _place(rows, users, rng)
    writer = _Writer(rows, users)
    malformed = rows.with_row_index("i").filter(pl.col("kind") == "malformed")
    bad = dict(malformed.unique("subkind", keep="first", maintain_order=True).select("subkind", "i").iter_rows())

    files = []
    for fmt in FORMATS:
        path, compression = FILES[fmt]
        picked = writer.indices(fmt, newest_first=fmt != "csv")
        target = out_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_compress(_serialise(writer, fmt, picked, bad, rng), compression))
        entry = {"path": path, "format": fmt, "compression": compression, "tweets": len(picked)}
        if fmt == "csv":
            entry |= {"column_map": CSV_COLUMNS, "datetime_format": CSV_DATETIME, "timezone": "UTC"}
        if fmt == "archive":
            entry["account_id"] = users["user_id"][0]
        files.append(entry)

    cut_rows = malformed.filter(pl.col("subkind") == "truncated_gzip")["i"].to_list()
    packed = _compress(_jsonl(writer.v2(i, expand=True) for i in cut_rows), "gzip")
    truncated = packed[: len(packed) * 3 // 5]
    (out_dir / TRUNCATED_FILE).write_bytes(truncated)
    complete = zlib.decompressobj(wbits=31).decompress(truncated).count(b"\n")
    files.append({"path": TRUNCATED_FILE, "format": "v2_flat", "compression": "gzip", "tweets": 0,
                  "truncated": {"records_written": len(cut_rows), "complete_lines": complete}})
    return {"seed": seed, "n_tweets": n_tweets, "files": files, "csv_columns": CSV_COLUMNS,
            "planted": _planted_counts(rows), "truth": _truth(rows)}


def _planted_counts(rows: pl.DataFrame) -> dict:
    corpus = rows.filter("in_corpus")

    def by_subkind(kind: str) -> dict[str, int]:
        return dict(corpus.filter(pl.col("kind") == kind).group_by("subkind").len().sort("subkind").iter_rows())

    retweets = by_subkind("retweet")
    retweet_src = corpus.filter(pl.col("kind") == "retweet")["src"]
    return {
        "exact_duplicates": by_subkind("exact_duplicate"),
        "near_duplicates": by_subkind("near_duplicate"),
        "retweets": {
            "v1_retweeted_status": retweets.get("v1", 0), "v2_referenced_tweets": retweets.get("v2", 0),
            "rt_text": retweets.get("text", 0),
            "rt_text_in_samples": corpus.filter(
                (pl.col("kind") != "retweet") & pl.col("text").str.starts_with("RT @")).height,
            "original_not_in_corpus": int((~rows["in_corpus"].gather(retweet_src)).sum()),
        },
        "toxic": corpus.filter(pl.col("kind") == "toxic").height,
        "pii": by_subkind("pii"),
        "malformed": {"broken_json_line": 1, "missing_text": 1, "invalid_utf8": 1, "truncated_gzip": 1},
        "languages": dict(corpus.group_by("lang").len().sort("len", "lang", descending=[True, False]).iter_rows()),
        "synthetic_filler": corpus.filter(pl.col("synthetic") & (pl.col("kind") != "toxic")).height,
    }


def _truth(rows: pl.DataFrame) -> dict[str, list]:
    """Per planted tweet (not the plain originals): id, kind, subkind and the id of its source (null if none)."""
    ids = rows["id"]
    planted = rows.filter(pl.col("in_corpus") & (pl.col("kind") != "original"))
    source = ids.gather(planted["src"].clip(lower_bound=0)).to_frame("source_id").with_columns(
        pl.when(planted["src"] >= 0).then("source_id")
    )
    return planted.select("id", "kind", "subkind").with_columns(source.to_series()).to_dict(as_series=False)
