import pyarrow as pa

from transforms.stages.normalize import Normalize


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
