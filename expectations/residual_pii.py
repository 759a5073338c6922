"""Residual personal data in published text: the gate's own, independent second look after the pii stage.

Only unambiguous shapes are flagged, so a clean scrub never fails the gate: e-mail addresses, @mentions other than
the "@user" placeholder (a mention as Twitter defines it: not glued to a word character or one of !#$%&*@),
IPv4/IPv6 addresses, payment card numbers (issuer digit 2-6 and the Luhn checksum), and phone numbers written
"+CC ..." or, for North American regions, as (ddd) ddd-dddd / ddd-ddd-dddd. Other national phone formats depend on
the scrubber's region rules and are its call.

Every pattern runs as one polars regex pass over the whole column; the shapes that need a check (cards, addresses,
phones) are confirmed once per distinct candidate, and candidates are rare.
"""

from __future__ import annotations

import ipaddress
from typing import Callable, Sequence

import numpy as np
import phonenumbers
import polars as pl

EMAIL = r"[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)*\.\p{L}{2,}"
PLACEHOLDER_MENTION = r"[@＠]user(?-u:\b)"
MENTION = r"(?:^|[^A-Za-z0-9_!#$%&*@＠])[@＠][A-Za-z0-9_]"
CARD = r"\b[0-9](?:[ \-]?[0-9]){12,18}\b"
IPV4 = r"\b[0-9]{1,3}(?:\.[0-9]{1,3}){3,}\b"
IPV6 = r"(?i)\b[0-9a-f]{1,4}(?::[0-9a-f]{0,4}){2,7}"
PHONE_INTERNATIONAL = r"\+[0-9](?:[ .\-()]{0,2}[0-9]){6,14}"
PHONE_NANP = r"(?:\([2-9][0-9]{2}\) ?|\b[2-9][0-9]{2}[.\-])[2-9][0-9]{2}[.\-][0-9]{4}\b"
NANP_REGIONS = {"US", "CA"}
CARD_DIGITS = 19


def luhn_valid(numbers: Sequence[str]) -> np.ndarray:
    """Luhn checksums of digit strings (up to 19 digits), vectorized: left zero padding leaves the sum unchanged."""
    if not numbers:
        return np.zeros(0, dtype=bool)
    padded = "".join(n.zfill(CARD_DIGITS) for n in numbers).encode()
    digits = (np.frombuffer(padded, dtype=np.uint8) - ord("0")).reshape(len(numbers), CARD_DIGITS).astype(np.int64)
    doubled = (CARD_DIGITS - 1 - np.arange(CARD_DIGITS)) % 2 == 1  # every second digit from the right
    digits[:, doubled] *= 2
    digits -= 9 * (digits > 9)
    return digits.sum(axis=1) % 10 == 0


def _cards(candidates: list[str]) -> np.ndarray:
    numbers = ["".join(ch for ch in c if ch.isdigit()) for c in candidates]
    issuer = np.array([13 <= len(n) <= CARD_DIGITS and n[0] in "23456" for n in numbers], dtype=bool)
    ok = np.zeros(len(numbers), dtype=bool)
    idx = np.flatnonzero(issuer)
    ok[idx] = luhn_valid([numbers[i] for i in idx])
    return ok


def _ip_address(candidate: str) -> bool:
    if not any(ch.isdigit() for ch in candidate):  # "cafe:bad:..." is a word, not an address
        return False
    for form in (candidate, candidate.rstrip(":")):  # a colon may end the sentence ("at fe80::1:")
        try:
            ipaddress.ip_address(form)
            return True
        except ValueError:
            pass
    return False


def _phone(region: str | None) -> Callable[[str], bool]:
    def check(candidate: str) -> bool:
        try:
            return phonenumbers.is_valid_number(phonenumbers.parse(candidate, region))
        except phonenumbers.NumberParseException:
            return False

    return check


def _per_candidate(check: Callable[[str], bool]) -> Callable[[list[str]], np.ndarray]:
    return lambda candidates: np.fromiter((check(c) for c in candidates), dtype=bool, count=len(candidates))


def _confirmed(texts: pl.Series, pattern: str, check: Callable[[list[str]], np.ndarray]) -> pl.Series:
    """Rows holding at least one match of `pattern` that `check` confirms (each distinct match checked once)."""
    hit = np.zeros(len(texts), dtype=bool)
    candidates = texts.str.extract_all(pattern)
    rows = (candidates.list.len() > 0).fill_null(False).arg_true()
    if len(rows):
        candidates = candidates.gather(rows)
        distinct = candidates.explode().drop_nulls().unique()
        confirmed = distinct.filter(pl.Series(check(distinct.to_list()), dtype=pl.Boolean))
        if len(confirmed):
            hit[rows.filter(candidates.list.eval(pl.element().is_in(confirmed)).list.any()).to_numpy()] = True
    return pl.Series(hit)


def residual_pii(texts: pl.Series, phone_regions: Sequence[str]) -> pl.Series:
    """Per row: the first kind of personal data still in the text ("email", "mention", "card", "ip", "phone"),
    or null. Null texts are null."""
    texts = texts.cast(pl.String)
    found: dict[str, pl.Series] = {
        "email": texts.str.contains(EMAIL).fill_null(False),
        "mention": texts.str.replace_all(PLACEHOLDER_MENTION, "").str.contains(MENTION).fill_null(False),
        "card": _confirmed(texts, CARD, _cards),
        "ip": _confirmed(texts, IPV4, _per_candidate(_ip_address))
        | _confirmed(texts, IPV6, _per_candidate(_ip_address)),
        "phone": _confirmed(texts, PHONE_INTERNATIONAL, _per_candidate(_phone(None))),
    }
    if NANP_REGIONS & set(phone_regions):
        found["phone"] = found["phone"] | _confirmed(texts, PHONE_NANP, _per_candidate(_phone("US")))
    frame = pl.DataFrame(found)
    kind = pl.coalesce([pl.when(pl.col(k)).then(pl.lit(k)) for k in found])
    return frame.select(kind.alias("residual_pii")).to_series()
