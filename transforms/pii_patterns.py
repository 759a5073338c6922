"""What counts as personal data in a tweet: candidate patterns and the checks that confirm them.

Each `Rule` pairs a regex that polars runs over a whole text column (Rust regex syntax: no look-around, so
boundaries are spelled with `\\b` or a consumed neighbour character) with either a fixed replacement (emails,
mentions, URLs: the pattern alone is precise enough) or a `scrub` function. `scrub` sees one candidate substring,
never a tweet, and returns what should stand in its place: the candidate itself when it is not PII (a date, an order
number that fails Luhn), else the candidate with the PII part replaced by a typed placeholder. Candidates are rare,
so these Python checks stay off the hot path.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from typing import Literal

import phonenumbers

UrlMode = Literal["keep", "domain", "http"]

PLACEHOLDERS = {
    "email": "<EMAIL>",
    "phone": "<PHONE>",
    "ip": "<IP>",
    "card": "<CARD>",
    "iban": "<IBAN>",
    "ssn": "<SSN>",
    "mention": "@user",
    "url": "http",
}


@dataclass(frozen=True)
class Rule:
    kind: str  # the type reported in pii_types
    pattern: str  # polars (Rust) regex for candidates
    replacement: str | None = None  # fixed regex replacement: every match is PII
    scrub: Callable[[str], str] | None = None  # candidate -> its replacement (itself when not PII)


# --- regex-only rules -------------------------------------------------------------------------------------------

# Local part allows subaddresses (+tag) and Unicode letters; domain needs a dot and an alphabetic TLD.
EMAIL = r"[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)*\.[A-Za-z]{2,}"

# Twitter's own rule: a mention is not preceded by an ASCII letter, digit or one of _!#$%&*@ (so hashtags and
# "me@home" stay out; e-mails are gone by then), except right after "RT" ("RT@handle:"); a non-Latin letter
# may touch it (Arabic, CJK). The neighbour is captured and put back.
MENTION = r"(^|[^A-Za-z0-9_!#$%&*@＠]|\b[Rr][Tt]:?)[@＠][A-Za-z0-9_]+"

# A URL starts with a scheme or "www." and ends before whitespace; trailing punctuation stays outside it. URLs go
# first (an e-mail inside one goes with it), so "www." right after "@" or a dot belongs to an e-mail, not a URL;
# the character before it is captured and put back.
_URL_START = r"(?i)(^|[^\w@.\-])(?:https?://"
_URL_BODY = r"""[^\s<>"“”]*[^\s<>"“”'.,;:!?)\]}…]"""
URL = _URL_START + r"|www\.)" + _URL_BODY
# Domain mode keeps the host (without user info, "www." and port) and drops path and query.
URL_HOST = _URL_START + r"(?:[^\s/?#@]*@)?(?:www\.)?|www\.)([\w\-]+(?:\.[\w\-]+)*)(?:[:/?#]" + _URL_BODY + r")?"

# --- validated rules --------------------------------------------------------------------------------------------

# 2 letters, 2 check digits, then 4-character groups, spaced or not; the length table decides where it ends.
IBAN = r"(?i)\b[a-z]{2}[0-9]{2}(?: ?[0-9a-z]{4}){2,7}(?: ?[0-9a-z]{1,3})?\b"
# A whole run of 13+ digits in groups joined by single spaces/dashes (4-4-4-4, Amex 4-6-5, ...): taking the whole
# run keeps a neighbouring number ("order 5641127125109919 6011-3994-...") from swallowing a card's first group.
# scrub_card then finds the card among the groups. A leading "+" is matched so that E.164 phone numbers
# ("+2348171270334") are left to the phone rule.
CARD = r"\+?\b[0-9](?:[ \-]?[0-9]){12,}\b"
SSN = r"\b[0-9]{3}[ \-][0-9]{2}[ \-][0-9]{4}\b"
# Greedy over dotted numbers, so "1.2.3.4.5" is one candidate (and not an address).
IPV4 = r"\b[0-9]{1,3}(?:\.[0-9]{1,3}){3,}\b"
# Hex groups with at least two colons; the character before it is consumed (no look-behind) and put back.
IPV6 = r"(?i)(?:^|[^\w:.])[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3})?"
# A run of at least 7 digits joined by up to two of " .-/()": the phone checks then split it into numbers.
PHONE = r"(?:\+\(?|\(|\b)[0-9](?:[ .\-/()]{0,2}[0-9]){6,}"

# IBAN lengths by country (ISO 13616 registry).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25,
    "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip

_DIGIT_RUN = re.compile(r"[0-9]+")
_TOKEN = re.compile(r"\S+")
_SSN_SHAPE = re.compile(r"([0-9]{3})([ \-])([0-9]{2})\2([0-9]{4})")
# Phone numbers carry 7 to 15 digits (E.164), plus a trunk prefix or a "(0)" in some national formats.
_PHONE_DIGITS = (7, 17)


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum that every payment card number satisfies (and ~90% of random numbers fail)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_card(digits: str) -> bool:
    """13-19 digits, an issuer prefix in use (2-6: Mastercard, Amex/JCB/Diners, Visa, Discover/UnionPay), Luhn."""
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_ok(digits)


def iban_ok(compact: str) -> bool:
    """Known country, that country's length, and the ISO 7064 mod-97 check (letters count as 10..35)."""
    compact = compact.upper()
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit() or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def ssn_ok(candidate: str) -> bool:
    """US SSN shape with one consistent separator and the number ranges the SSA never issues excluded."""
    m = _SSN_SHAPE.fullmatch(candidate)
    if m is None:
        return False
    area, _, group, serial = m.groups()
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def is_phone(text: str, regions: tuple[str, ...]) -> bool:
    """All of `text` is one valid number for one of `regions`, or for any country when written with "+CC".

    National formats must also be grouped as that region writes them (libphonenumber's STRICT_GROUPING), so a
    year before a number ("2013 212 555") does not pass as one; "+CC" numbers are unambiguous enough to only need
    validity.
    """
    leniency = phonenumbers.Leniency.VALID if text.startswith("+") else phonenumbers.Leniency.STRICT_GROUPING
    digits = _digits(text)
    return any(
        _digits(match.raw_string) == digits
        for region in regions
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=leniency)
    )


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def scrub_iban(candidate: str) -> str:
    """Replace the IBAN at the start of the candidate; its country's length says where it ends."""
    compact = candidate.replace(" ", "")
    length = IBAN_LENGTHS.get(compact[:2].upper())
    if length is None or len(compact) < length or not iban_ok(compact[:length]):
        return candidate
    seen = 0
    for end, ch in enumerate(candidate, start=1):
        seen += ch != " "
        if seen == length:
            return PLACEHOLDERS["iban"] + candidate[end:]
    return candidate


def card_shaped(candidate: str, groups: list[tuple[int, int]]) -> bool:
    """Digit groups written the way cards are: one unbroken number, 4-digit groups (the last may be shorter) or
    Amex/Diners 4-6-5/4-6-4, with one kind of separator; so a number beside a card or an SSN is not read as one."""
    if len(groups) == 1:
        return True
    lengths = [b - a for a, b in groups]
    separators = {candidate[a[1] : b[0]] for a, b in zip(groups, groups[1:])}
    fours = all(n == 4 for n in lengths[:-1]) and lengths[-1] <= 4
    return len(separators) == 1 and (fours or lengths in ([4, 6, 5], [4, 6, 4]))


def scrub_card(candidate: str) -> str:
    """Replace each card number among the candidate's digit groups (longest, then leftmost, first); the other
    groups stay."""
    groups = [(m.start(), m.end()) for m in _DIGIT_RUN.finditer(candidate)]
    if candidate.startswith("+"):  # "+..." starts a phone number, never a card
        groups = groups[1:]
    best = None
    for i in range(len(groups)):
        digits = ""
        for j in range(i, len(groups)):
            digits += candidate[groups[j][0] : groups[j][1]]
            if len(digits) > 19:
                break
            if is_card(digits) and card_shaped(candidate, groups[i : j + 1]):
                key = (len(digits), -i)
                if best is None or key > best[0]:
                    best = (key, groups[i][0], groups[j][1])
    if best is None:
        return candidate
    _, start, end = best
    return scrub_card(candidate[:start]) + PLACEHOLDERS["card"] + scrub_card(candidate[end:])


def scrub_ssn(candidate: str) -> str:
    return PLACEHOLDERS["ssn"] if ssn_ok(candidate) else candidate


def scrub_ipv4(candidate: str) -> str:
    try:
        ipaddress.IPv4Address(candidate)
    except ValueError:
        return candidate
    return PLACEHOLDERS["ip"]


def scrub_ipv6(candidate: str) -> str:
    """Keep the consumed neighbour character; require a digit so words like "cafe::bad" are left alone."""
    lead = candidate[:1] if candidate[:1] and candidate[0] not in "0123456789abcdefABCDEF:" else ""
    core = candidate[len(lead) :]
    if not any(ch.isdigit() for ch in core):
        return candidate
    try:
        ipaddress.IPv6Address(core)
    except ValueError:
        return candidate
    return lead + PLACEHOLDERS["ip"]


@cache
def national_lengths(regions: tuple[str, ...]) -> frozenset[int]:
    """Digit counts a national-format number can have in `regions`, with or without the trunk prefix."""
    lengths = set()
    for region in regions:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        prefix = len(metadata.national_prefix or "")
        lengths |= {n + extra for n in metadata.general_desc.possible_length for extra in {0, prefix}}
    return frozenset(lengths)


def scrub_phones(candidate: str, regions: tuple[str, ...]) -> str:
    """Replace each valid number inside a run of digits, left to right, longest span of whole tokens first.

    A run often glues a number to its neighbours ("in 2013 212 555 0123"), and libphonenumber rejects the whole
    run, so spans of whitespace-separated tokens are tried. Only spans with a plausible digit count reach
    libphonenumber (~0.1 ms a call): 7-17 digits after a "+", else a national length of `regions`.
    """
    tokens = [(m.start(), m.end()) for m in _TOKEN.finditer(candidate)]
    digits = [sum(ch.isdigit() for ch in candidate[a:b]) for a, b in tokens]
    national = national_lengths(regions)
    out, pos, i = [], 0, 0
    while i < len(tokens):
        for j in range(len(tokens), i, -1):
            count = sum(digits[i:j])
            international = candidate[tokens[i][0]] == "+"
            if not (_PHONE_DIGITS[0] <= count <= _PHONE_DIGITS[1] if international else count in national):
                continue
            start, end = tokens[i][0], tokens[j - 1][1]
            # punctuation after the last digit, and a "(" that no ")" closes, are the tweet's, not the number's
            while not candidate[end - 1].isdigit():
                end -= 1
            start += candidate[start] == "(" and ")" not in candidate[start:end]
            if is_phone(candidate[start:end], regions):
                out += [candidate[pos:start], PLACEHOLDERS["phone"]]
                pos, i = end, j
                break
        else:
            i += 1
    return "".join(out) + candidate[pos:]


def rules(urls: UrlMode, phone_regions: tuple[str, ...]) -> list[Rule]:
    """The rules in the order they run: an earlier rule's placeholder hides its text from later ones (a URL
    may hold an e-mail, an e-mail looks like a mention, an IBAN holds card-like digit groups, a card phone-like ones).
    """
    url_rules = {
        "keep": [],
        "domain": [Rule("url", URL_HOST, replacement="${1}${2}")],
        "http": [Rule("url", URL, replacement="${1}" + PLACEHOLDERS["url"])],
    }[urls]
    return [
        *url_rules,
        Rule("email", EMAIL, replacement=PLACEHOLDERS["email"]),
        Rule("mention", MENTION, replacement="${1}" + PLACEHOLDERS["mention"]),
        Rule("iban", IBAN, scrub=scrub_iban),
        Rule("card", CARD, scrub=scrub_card),
        Rule("ssn", SSN, scrub=scrub_ssn),
        Rule("ip", IPV4, scrub=scrub_ipv4),
        Rule("ip", IPV6, scrub=scrub_ipv6),
        Rule("phone", PHONE, scrub=partial(scrub_phones, regions=phone_regions)),
    ]
