import polars as pl
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.stages.normalize import MENTION, RT_PREFIX, URL, Normalize, normalize_text, unescape


def _run(texts):
    stage = Normalize()
    out = stage.annotate(pa.table({"text": pa.array(texts, pa.string())}))
    return out.column("text").to_pylist(), out.column("dedupe_key").to_pylist()


def test_unescapes_entities_once():
    text, _ = _run(["a &amp; b &lt;3 &amp;lt; &gt;", "&#128512; &eacute; &#x41;"])
    assert text == ["a & b <3 &lt; >", "\U0001F600 \u00e9 A"]


def test_unicode_nfc_and_control_characters():
    text, _ = _run(["cafe\u0301\x00\u200b ok\x07", "zwj emoji \U0001F468\u200d\U0001F469 kept"])
    assert text == ["caf\u00e9 ok", "zwj emoji \U0001F468\u200d\U0001F469 kept"]


def test_whitespace_keeps_paragraphs():
    text, _ = _run(["  a \t b\r\n\r\n\r\n\r\n  c  \n d  "])
    assert text == ["a b\n\nc\nd"]


def test_dedupe_key_masks_mentions_urls_and_retweet_prefix():
    _, key = _run([
        "RT @Some_One: Big NEWS https://t.co/AbC @other",
        "big news  http://example.com/x @third",
        "rt @a: RT @b: big news www.example.org @c",
    ])
    assert key[0] == "big news http @user"
    assert key[0] == key[1] == key[2]


def test_empty_text_is_dropped_with_reason():
    stage = Normalize()
    t = pa.table({"text": pa.array([" \u200b ", "x", None], pa.string())})
    t = t.set_column(0, "text", stage.annotate(t).column("text"))
    assert stage.drop_reasons(t).to_pylist() == ["empty_text", None, "empty_text"]
    keep_all = Normalize(Normalize.Config(drop_empty=False))
    assert keep_all.drop_reasons(t).null_count == 3


def test_deterministic_and_idempotent():
    texts = ["Hello &amp; <b>", "  x\ny  ", "\u00c5ngstr\u00f6m"]
    once, _ = _run(texts)
    twice, _ = _run(once)
    assert once == twice
    assert _run(texts)[0] == once


PIECES = [" ", "  ", "\t", "\n", "\n\n", "\n\n\n", " \n", "\n ", "\r\n", "\r", "\u00a0", "\u3000", "\u2028", "\u200b",
          "\x07", "\x85", "a", "B", "\u00e9", "e\u0301", "\u1100\u1161", "RT @x: ", "@Bob_1", "https://t.co/Ab", "&amp;",
          "\u00c5", "A\u030a"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.sampled_from(PIECES), max_size=12).map("".join), min_size=1, max_size=40))
def test_cheap_paths_equal_the_full_cleaning_on_every_row(texts):
    """annotate skips NFC and whitespace fixes on rows that need none, and builds the key with literal replaces:
    the result must equal running every regex on every row."""
    text, key = _run(texts)
    frame = pl.DataFrame({"t": unescape(pl.Series(texts, dtype=pl.String))}).select(
        normalize_text(pl.col("t").str.normalize("NFC")).alias("text")
    ).with_columns(
        pl.col("text").str.to_lowercase().str.replace(RT_PREFIX, "").str.replace_all(URL, "http")
        .str.replace_all(MENTION, "@user").str.replace_all(r"\s{2,}|[^\S ]", " ").str.strip_chars().alias("key")
    )
    assert text == frame["text"].to_list()
    assert key == frame["key"].to_list()
