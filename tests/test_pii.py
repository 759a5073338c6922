"""The pii stage: each PII type replaced, look-alikes kept byte for byte, author pseudonyms, key handling.

Unit tests use hand-written examples only; the planted-PII test set on real tweets (bench/pii_eval.py) runs in the
slow test and reports metrics, never texts.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import logging
import pickle
import re
import sys
import types
import unicodedata
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from transforms.pii_patterns import Rule, iban_ok, luhn_ok, scrub_card, scrub_phones, ssn_ok
from transforms.stages import stage_class
from transforms.stages.pii import MissingKey, PiiScrub, _scrub_validated, mask_excerpts

KEY = "test-key-0123456789abcdef"


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv("TWEETMILL_PII_KEY", KEY)


def run(texts, authors=None, **config) -> pa.Table:
    stage = PiiScrub(PiiScrub.Config(**config))
    stage.ensure_setup()
    authors = authors if authors is not None else [None] * len(texts)
    return stage.annotate(pa.table({"text": pa.array(texts, pa.string()), "author_id": pa.array(authors, pa.string())}))


def scrub1(text: str, **config) -> tuple[str, list[str]]:
    row = run([text], **config).to_pylist()[0]
    return row["text"], row["pii_types"]


PII_CASES = [
    # e-mails, incl. subaddress and upper case
    ("write to John.Doe+news@Example.COM today", "write to <EMAIL> today", ["email"]),
    ("mail jane_doe99@uni-mail.de.", "mail <EMAIL>.", ["email"]),
    # phones: US national formats (default region) and +CC formats of other countries
    ("call (212) 555-0123 now", "call <PHONE> now", ["phone"]),
    ("call 212.555.0123 or 212 555 0199", "call <PHONE> or <PHONE>", ["phone"]),
    ("toll free 1-800-733-2767!", "toll free <PHONE>!", ["phone"]),
    ("ring 2125550123", "ring <PHONE>", ["phone"]),
    ("uk +44 20 7946 0958, de +49 30 12345678", "uk <PHONE>, de <PHONE>", ["phone"]),
    ("fr +33 1 23 45 67 89 e164 +442079460958", "fr <PHONE> e164 <PHONE>", ["phone"]),
    ("office +44 (0)20 7946 0958.", "office <PHONE>.", ["phone"]),
    ("cell +1 (415) 555-2671", "cell <PHONE>", ["phone"]),
    ("(call 212-555-0123)", "(call <PHONE>)", ["phone"]),
    ("since 2013 212 555 0123", "since 2013 <PHONE>", ["phone"]),
    # IP addresses
    ("from 203.0.113.7: denied", "from <IP>: denied", ["ip"]),
    ("v6 2001:db8::8a2e:370:7334 and 2001:0DB8:0000:0000:0000:0000:0000:0001", "v6 <IP> and <IP>", ["ip"]),
    # payment cards
    ("card 4111 1111 1111 1111 exp", "card <CARD> exp", ["card"]),
    ("mc 5500-0000-0000-0004, amex 378282246310005", "mc <CARD>, amex <CARD>", ["card"]),
    ("amex 3782 822463 10005", "amex <CARD>", ["card"]),
    ("card 4111 1111 1111 1111 2024", "card <CARD> 2024", ["card"]),
    # IBANs, grouped and not, any case
    ("pay DE89 3704 0044 0532 0130 00 please", "pay <IBAN> please", ["iban"]),
    ("GB82WEST12345698765432.", "<IBAN>.", ["iban"]),
    ("iban fr1420041010050500013m02606", "iban <IBAN>", ["iban"]),
    # US SSNs
    ("ssn 123-45-6789 and 078 05 1120", "ssn <SSN> and <SSN>", ["ssn"]),
    ("ssn 221 95 8927 2024", "ssn <SSN> 2024", ["ssn"]),  # 13 digits that pass Luhn, but not written as a card
    # mentions
    ("@alice hi .@bob (@erin) @frank's", "@user hi .@user (@user) @user's", ["mention"]),
    ("RT @carol: wow RT@dave: ok", "RT @user: wow RT@user: ok", ["mention"]),
    ("مرحبا@handle_1", "مرحبا@user", ["mention"]),
    # URLs (default: "http")
    ("see https://t.co/abc123XY. and www.example.com/a?b=1", "see http. and http", ["url"]),
]


@pytest.mark.usefixtures("key_env")
@pytest.mark.parametrize("text,expected,kinds", PII_CASES, ids=[c[1] for c in PII_CASES])
def test_pii_is_replaced_by_typed_placeholders(text, expected, kinds):
    assert scrub1(text) == (expected, kinds)


LOOKALIKES = [
    "on 2024-03-15 at 10:30",
    "due 15/03/2024 or 3/15/2024 or 15.03.2024",
    "kickoff 10:30:45, 2024-03-15T10:30:00Z",
    "now $1,299.99 (was €1.499,00) 45% off",
    "upgrade to v2.3.1 or 3.11.4-rc1",
    "final score 3-1, 24-17 in OT",
    "#100DaysOfCode #COVID19 #2020Vision",
    "iPhone15 vs iPhone 15 vs PS5, RTX 4090 in 4K 1080p 5G",
    "since 1999, in 2013 and 2024",
    "1,000,000 followers, 24/7, 9/11, 50/50, 16:9",
    "order #4111111111111112 shipped",
    "ref 4111 1111 1111 1112",
    "id 123-45-678 and 000-12-3456 and 666-12-3456",
    "zip 90210 or 10001-1234",
    "pi 3.14159265 at 40.7128,-74.0060",
    "pop 8336817 on flight BA2490",
    "isbn 978-3-16-148410-0",
    "isbn 978-6-51-263798-9 2024",  # its last 14 digits pass Luhn, but are not grouped as a card
    "mac 00:1A:2B:3C:4D:5E, std::vector, cafe::bad",
    "dotted 1.2.3.4.5 is no address",
    "me@home and meet@noon",
    "phone-ish 555-0123 and 212 5550 123",
    "already anonymised @user and http",
    "iban-ish DE00 3704 0044 0532 0130 00",
    "tweet 1234567890123456789",
]


@pytest.mark.usefixtures("key_env")
@pytest.mark.parametrize("text", LOOKALIKES)
def test_lookalikes_stay_byte_for_byte(text):
    assert scrub1(text) == (text, [])


@pytest.mark.usefixtures("key_env")
def test_columns_follow_the_stage_contract():
    texts = ["mail a@b.co or call +44 20 7946 0958 @bob", "nothing here", ""]
    out = run(texts, authors=["1", "2", None])
    assert out.schema == pa.schema(PiiScrub.writes)
    assert out.num_rows == 3
    assert out.column("text").equals(out.column("text_scrubbed"))
    assert PiiScrub.internal == ("text_scrubbed",)
    assert out.column("pii_types").to_pylist() == [["email", "mention", "phone"], [], []]
    assert stage_class("pii") is PiiScrub
    assert PiiScrub().drop_reasons(out).null_count == 3  # scrubbing never drops


@pytest.mark.usefixtures("key_env")
def test_chunked_and_empty_tables():
    stage = PiiScrub()
    stage.ensure_setup()
    chunked = pa.Table.from_batches(
        [pa.record_batch({"text": [t], "author_id": [a]}) for t, a in [("x 4111111111111111", "9"), ("@ab", "9")]]
    )
    out = stage.annotate(chunked)
    assert out.column("text").to_pylist() == ["x <CARD>", "@user"]
    assert len(set(out.column("author_id").to_pylist())) == 1
    empty = stage.annotate(pa.table({"text": pa.array([], pa.string()), "author_id": pa.array([], pa.string())}))
    assert empty.num_rows == 0 and empty.schema == pa.schema(PiiScrub.writes)


@pytest.mark.usefixtures("key_env")
def test_url_modes():
    text = "read https://user:pw@www.Example.com:8080/a/b?q=1, http://t.co/x1 and www.foo.org."
    assert scrub1(text, urls="http") == ("read http, http and http.", ["url"])
    assert scrub1(text, urls="domain") == ("read Example.com, t.co and foo.org.", ["url"])
    kept = "read http://t.co/x1 and www.foo.org/a?b=1."
    assert scrub1(kept, urls="keep") == (kept, [])
    # kept URLs are still scrubbed of what other rules find in them
    assert scrub1("https://x.org/?to=ann@mail.com", urls="keep") == ("https://x.org/?to=<EMAIL>", ["email"])


@pytest.mark.usefixtures("key_env")
def test_phone_regions_add_national_formats():
    assert scrub1("tel 020 7946 0958")[0] == "tel 020 7946 0958"
    assert scrub1("tel 020 7946 0958", phone_regions=("US", "GB")) == ("tel <PHONE>", ["phone"])
    with pytest.raises(ValidationError):
        PiiScrub.Config(phone_regions=("XX",))


@pytest.mark.usefixtures("key_env")
def test_marker_characters_only_leave_rows_that_held_pii():
    texts = ["a \ufdd0 b", "a \ufdd0 4111111111111111 \ufdd1"]
    assert run(texts).column("text").to_pylist() == ["a \ufdd0 b", "a  <CARD> "]


def test_checks_run_once_per_distinct_candidate():
    calls = []

    def scrub(candidate: str) -> str:
        calls.append(candidate)
        return "<X>" if candidate == "1234" else candidate

    texts = pl.Series(["a 1234 b 5678"] * 1000 + ["none"] * 1000)
    new, hit = _scrub_validated(texts, Rule("x", r"\b[0-9]{4}\b", scrub=scrub))
    assert sorted(calls) == ["1234", "5678"]
    assert new[0] == "a <X> b 5678" and new[-1] == "none"
    assert hit.sum() == 1000


def test_validators():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89370400440532013000") and not iban_ok("DE88370400440532013000")
    assert not iban_ok("DE8937040044053201300")  # one character short for Germany
    assert ssn_ok("123-45-6789") and not ssn_ok("123-45 6789") and not ssn_ok("912-45-6789")
    assert not ssn_ok("123-00-6789") and not ssn_ok("123-45-0000")
    assert scrub_card("2024 4111 1111 1111 1111") == "2024 <CARD>"
    assert scrub_card("+4111111111111111") == "+4111111111111111"
    assert scrub_card("4111111111111112 6011-1111-1111-1117") == "4111111111111112 <CARD>"
    assert scrub_card("4111 1111 1111 1111 5500 0000 0000 0004") == "<CARD> <CARD>"
    assert scrub_phones("2 (212) 555-0123 5", ("US",)) == "2 <PHONE> 5"


# --- author pseudonyms and the key ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("key_env")
def test_author_id_becomes_a_keyed_pseudonym():
    out = run(["a", "b", "c", "d"], authors=["42", "42", "7", None]).column("author_id").to_pylist()
    expected = hmac.new(KEY.encode(), b"42", hashlib.sha256).hexdigest()[:32]
    assert out[0] == out[1] == expected
    assert out[2] != out[0] and len(out[2]) == 32
    assert out[3] is None


def test_pseudonyms_depend_on_the_key(monkeypatch):
    monkeypatch.setenv("TWEETMILL_PII_KEY", KEY)
    first = run(["a"], authors=["42"]).column("author_id")[0]
    monkeypatch.setenv("TWEETMILL_PII_KEY", KEY + "x")
    assert run(["a"], authors=["42"]).column("author_id")[0] != first
    monkeypatch.setenv("OTHER_KEY_VAR", KEY)
    monkeypatch.delenv("TWEETMILL_PII_KEY")
    assert run(["a"], authors=["42"], pseudonym_key_env="OTHER_KEY_VAR").column("author_id")[0] == first


def test_missing_key_fails_at_setup_with_a_clear_message(monkeypatch):
    monkeypatch.delenv("TWEETMILL_PII_KEY", raising=False)
    with pytest.raises(MissingKey, match="TWEETMILL_PII_KEY.*allow_dev_key"):
        PiiScrub().ensure_setup()


def test_short_key_is_rejected_without_echoing_it(monkeypatch):
    monkeypatch.setenv("TWEETMILL_PII_KEY", "s3cr3t-value")
    with pytest.raises(MissingKey) as err:
        PiiScrub().ensure_setup()
    assert "s3cr3t-value" not in str(err.value) and "too short" in str(err.value)


def test_dev_key_only_when_allowed(monkeypatch, caplog):
    monkeypatch.delenv("TWEETMILL_PII_KEY", raising=False)
    with caplog.at_level(logging.WARNING):
        out = run(["a"], authors=["42"], allow_dev_key=True)
    assert out.column("author_id")[0].as_py() is not None
    assert "development key" in caplog.text


def test_key_from_a_prefect_secret_block(monkeypatch):
    monkeypatch.delenv("TWEETMILL_PII_KEY", raising=False)
    loaded = []

    class Secret:
        @staticmethod
        def load(name):
            loaded.append(name)
            if name != "pii-key":
                raise ValueError(f"no block; internals: {KEY}")
            return types.SimpleNamespace(get=lambda: KEY)

    monkeypatch.setitem(sys.modules, "prefect.blocks.system", types.SimpleNamespace(Secret=Secret))
    out = run(["a"], authors=["42"], pseudonym_key_secret="pii-key").column("author_id")[0].as_py()
    assert out == hmac.new(KEY.encode(), b"42", hashlib.sha256).hexdigest()[:32]
    with pytest.raises(MissingKey) as err:
        PiiScrub(PiiScrub.Config(pseudonym_key_secret="missing")).ensure_setup()
    assert KEY not in str(err.value) and err.value.__cause__ is None and "missing" in str(err.value)
    assert loaded == ["pii-key", "missing"]


@pytest.mark.usefixtures("key_env")
def test_the_key_never_travels_with_the_stage():
    stage = PiiScrub()
    stage.ensure_setup()
    blob = pickle.dumps(stage)
    assert KEY.encode() not in blob
    assert KEY not in repr(stage.config)


# --- properties -----------------------------------------------------------------------------------------------------

_PLAIN = st.text(st.characters(exclude_characters="0123456789@＠\ufdd0\ufdd1", exclude_categories=("Cs", "Nd")))


@pytest.mark.usefixtures("key_env")
@settings(max_examples=30, deadline=None)
@given(st.lists(_PLAIN.filter(lambda t: "www." not in t.lower() and "://" not in t), min_size=1, max_size=50))
def test_text_without_digits_at_signs_or_links_is_untouched(texts):
    assert run(texts).column("text").to_pylist() == texts


# --- the planted-PII test set on real tweets ------------------------------------------------------------------------


def _pii_eval():
    path = Path(__file__).resolve().parents[1] / "bench" / "pii_eval.py"
    spec = importlib.util.spec_from_file_location("pii_eval", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_planted_pii_on_real_tweets(shared_data):
    scores, _ = _pii_eval().evaluate(shared_data, seed=0)
    for kind in ("email", "phone", "ip", "card", "iban", "ssn"):
        assert scores[kind]["rate"] >= 0.98, (kind, scores[kind])
    assert scores["mention"]["rate"] >= 0.99, scores["mention"]
    assert scores["real_mentions"]["rate"] >= 0.99 and scores["real_mentions"]["n"] > 500, scores["real_mentions"]
    assert scores["lookalike"]["rate"] >= 0.97, scores["lookalike"]
    assert scores["real_words"]["rate"] >= 0.97 and scores["real_words"]["n"] > 10_000, scores["real_words"]


FIELD_NAME = re.compile(r'"[A-Za-z_][A-Za-z0-9_]*"\s*:')


@settings(max_examples=300, deadline=None)
# Characters Python's Unicode tables know (the regex engine's may be newer: it masks letters Python calls
# unassigned), and JSON's syntax.
@given(st.text(alphabet=st.one_of(st.characters(max_codepoint=0x2FFF, blacklist_categories=("Cs", "Cn")),
                                  st.sampled_from('"{}[]:,_ aZ9')), max_size=200))
def test_masked_excerpts_keep_their_shape_and_only_field_names(raw):
    (masked,) = mask_excerpts(pa.array([raw])).to_pylist()
    assert len(masked) == len(raw)
    for ours, theirs in zip(masked, raw):
        assert ours == theirs or (ours, theirs.isalnum() or unicodedata.category(theirs).startswith("M")) in {
            ("x", True), ("0", True)}
    content = FIELD_NAME.sub("", masked)
    assert not re.search(r"[^\W\d_x]|[1-9]", content), content  # no letter but x, no digit but 0, outside names


def test_masked_excerpts_name_fields_but_not_people():
    raw = ['{"text":"mail jane@example.com","user":{"name":"Jane Doe","id":12', "4,Jane Doe,+44 20 7946 0958", None]
    assert mask_excerpts(pa.array(raw)).to_pylist() == [
        '{"text":"xxxx xxxx@xxxxxxx.xxx","user":{"name":"xxxx xxx","id":00', "0,xxxx xxx,+00 00 0000 0000", None]
    # A key no tweet payload has may be data itself (an export keyed by handles or addresses): masked like content.
    keyed = '{"jane_doe_at_example_org":{"followers":12},"screen_name":"jdoe"}'
    assert mask_excerpts(pa.array([keyed])).to_pylist() == [
        '{"xxxx_xxx_xx_xxxxxxx_xxx":{"xxxxxxxxx":00},"screen_name":"xxxx"}']
