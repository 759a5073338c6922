"""The planted-PII test set: real tweets with synthetic PII and look-alikes inserted, and its scores.

Real tweets (SemEval train/dev, CrisisLex, XLM-T train/val) give realistic contexts: real handles and URLs,
numbers, dates, emoji, several languages. Into a copy of one tweet per case, at a random word boundary, goes one
synthetic value: PII (e-mails, phones, IPs, cards, IBANs, SSNs, mentions) in many formats, or a look-alike that must
survive (dates, times, prices, versions, scores, order numbers that fail Luhn...). Everything is seeded.

A case is scored against the stage's output on its two halves: scrub(left) + token + scrub(right), where token is
the placeholder (PII) or the value itself (look-alike). Only metrics and synthetic values are printed, never tweet
text, since the contexts are real people's tweets.

    .venv/bin/python bench/pii_eval.py [--data ../shared/data] [--seed 0] [--show-failures]
"""

from __future__ import annotations

import argparse
import csv
import html
import ipaddress
import json
import random
import re
import string
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import phonenumbers
import pyarrow as pa

from transforms.pii_patterns import IBAN_LENGTHS, PLACEHOLDERS, luhn_ok
from transforms.stages.pii import PiiScrub

PII_KINDS = ("email", "phone", "ip", "card", "iban", "ssn", "mention")
# Wrappers around a planted token: bare, followed by punctuation, in brackets or quotes, next to another number.
WRAPS = (
    ("", ""), ("", ""), ("", ","), ("", "."), ("(", ")"), ("", "!"), ('"', '"'), ("[", "]"), ("", ";"), ("", "?"),
    ("no. 7 ", ""), ("", " 2024"),
)  # fmt: skip
MENTION_WRAPS = (("", ""), ("", ""), ("", ":"), (".", ""), ("(", ")"), ("", "'s"), ("RT ", ":"), ("RT", ":"))
INTL_PHONE_REGIONS = ("GB", "DE", "FR", "IN", "BR", "JP", "AU", "ES", "IT", "MX", "NG", "ZA", "CA")
# Regions whose numbers are also written "+CC (0)..." (the national trunk prefix in parentheses).
TRUNK_ZERO_REGIONS = ("GB", "DE", "AU", "ZA")
IBAN_COUNTRIES = ("DE", "GB", "FR", "NL", "ES", "IT", "BE", "CH", "AT", "PL", "SE", "IE")


@dataclass(frozen=True)
class Case:
    kind: str  # a PII kind, or "lookalike:<name>"
    value: str  # the synthetic value
    prefix: str
    suffix: str
    left: str  # real context before and after the planted token
    right: str

    @property
    def is_pii(self) -> bool:
        return not self.kind.startswith("lookalike:")

    @property
    def text(self) -> str:
        return _join(self.left, self.prefix + self.value + self.suffix, self.right)


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


# --- real tweets --------------------------------------------------------------------------------------------------


def load_tweets(data: Path, per_source: int, rng: random.Random) -> list[str]:
    """`per_source` tweets from each of SemEval (train/dev files), CrisisLex and XLM-T (train/val), lightly cleaned
    as the normalize stage would (HTML entities, whitespace)."""
    semeval = []
    for path in sorted((data / "semeval2017_task4a" / "downloaded").glob("*.tsv")):
        if "train" in path.name or path.name.endswith("dev-A.tsv"):
            with open(path, encoding="utf-8", errors="replace") as f:
                semeval += [row[2] for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if len(row) > 2]
    crisis = []
    for path in sorted((data / "crisislex").glob("CrisisLexT*/*/*.csv")):
        with open(path, encoding="utf-8", errors="replace", newline="") as f:
            crisis += [row[1] for row in list(csv.reader(f))[1:] if len(row) > 1]
    xlmt = []
    for path in sorted((data / "xlm_t").glob("*/*_text.txt")):
        if path.parent.name != "all" and path.name.split("_")[0] in ("train", "val"):
            xlmt += path.read_text(encoding="utf-8").splitlines()
    tweets = []
    for source in (semeval, crisis, xlmt):
        cleaned = sorted({" ".join(html.unescape(t).split()) for t in source} - {""})
        tweets += rng.sample(cleaned, per_source)
    return tweets


# --- synthetic PII ------------------------------------------------------------------------------------------------


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def make_email(rng: random.Random) -> str:
    first, last = rng.choice(["john", "maria", "li", "olu", "anna"]), rng.choice(["doe", "silva", "wei", "smith", "k"])
    local = rng.choice(
        [f"{first}.{last}", f"{first}_{last}{_digits(rng, 2)}", f"{first}+{rng.choice(['news', 'tw', 'x1'])}",
         f"{first.upper()}.{last.upper()}", f"{first}{_digits(rng, 4)}", f"{first[0]}-{last}"]
    )  # fmt: skip
    domain = rng.choice(["gmail.com", "example.co.uk", "uni-mail.de", "Example.ORG", "mail.sub.example.io", "yahoo.fr"])
    return f"{local}@{domain}"


def _valid_number(rng: random.Random, region: str) -> phonenumbers.PhoneNumber:
    """A valid number of the region: its example number redrawn, but for the first digit (the number's type), until
    valid; North American numbers are redrawn whole, so area codes vary."""
    kind = rng.choice([phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE])
    example = phonenumbers.example_number_for_type(region, kind)
    national = phonenumbers.national_significant_number(example)
    while True:
        tail = len(national) - (example.country_code != 1)
        number = phonenumbers.parse(f"+{example.country_code}{national[:-tail]}{_digits(rng, tail)}")
        if phonenumbers.is_valid_number(number):
            return number


def make_phone(rng: random.Random) -> str:
    fmt = phonenumbers.PhoneNumberFormat
    if rng.random() < 0.5:  # US: the default region, national formats included
        n = _valid_number(rng, "US")
        a, e, s = (str(n.national_number)[i:j] for i, j in ((0, 3), (3, 6), (6, 10)))
        return rng.choice(
            [f"({a}) {e}-{s}", f"{a}-{e}-{s}", f"{a}.{e}.{s}", f"{a} {e} {s}", f"{a}{e}{s}", f"1-{a}-{e}-{s}",
             f"+1 ({a}) {e}-{s}", f"+1 {a} {e} {s}", f"+1{a}{e}{s}", f"+1-{a}-{e}-{s}"]
        )  # fmt: skip
    region = rng.choice(INTL_PHONE_REGIONS)
    n = _valid_number(rng, region)
    intl = phonenumbers.format_number(n, fmt.INTERNATIONAL)
    cc, rest = intl.split(" ", 1)
    e164 = phonenumbers.format_number(n, fmt.E164)
    formats = [e164, intl, cc + " " + rest.replace(" ", "-"), cc + "." + rest.replace(" ", ".")]
    if region in TRUNK_ZERO_REGIONS:
        formats.append(f"{cc} (0){rest}")
    return rng.choice(formats)


def make_ip(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return str(ipaddress.IPv4Address(rng.randrange(1 << 24, 224 << 24)))
    address = ipaddress.IPv6Address((0x2001 << 112) | rng.getrandbits(112))
    if rng.random() < 0.5:  # a compressed form with a run of zero groups
        groups = address.exploded.split(":")
        address = ipaddress.IPv6Address(":".join(groups[:3] + ["0"] * 3 + groups[6:]))
    return rng.choice([address.compressed, address.exploded, address.compressed.upper()])


def make_card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15), ("6011", 16)])
    body = prefix + _digits(rng, length - len(prefix) - 1)
    number = body + next(d for d in string.digits if luhn_ok(body + d))
    if length == 15:
        groups = [number[:4], number[4:10], number[10:]]
    else:
        groups = [number[i : i + 4] for i in range(0, 16, 4)]
    return rng.choice(["", " ", "-"]).join(groups)


def make_iban(rng: random.Random) -> str:
    country = rng.choice(IBAN_COUNTRIES)
    bban_len = IBAN_LENGTHS[country] - 4
    bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) if country in ("GB", "NL", "IE") else ""
    bban += _digits(rng, bban_len - len(bban))
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    compact = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    if rng.random() < 0.5:
        return compact
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def make_ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    sep = rng.choice(["-", "-", " "])
    return f"{area:03d}{sep}{rng.randrange(1, 100):02d}{sep}{rng.randrange(1, 10000):04d}"


def make_mention(rng: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits + "_"
    return "@" + rng.choice(string.ascii_letters) + "".join(rng.choice(alphabet) for _ in range(rng.randrange(2, 15)))


MAKERS = {
    "email": make_email, "phone": make_phone, "ip": make_ip, "card": make_card, "iban": make_iban, "ssn": make_ssn,
    "mention": make_mention,
}  # fmt: skip


def _bad_luhn(rng: random.Random) -> str:
    body = rng.choice("3456") + _digits(rng, 14)
    return body + rng.choice([d for d in string.digits if not luhn_ok(body + d)])


# Look-alikes: tokens that resemble PII and must be kept byte for byte.
LOOKALIKES = {
    "date_iso": lambda r: f"20{r.randrange(10, 30)}-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}",
    "date_dmy": lambda r: f"{r.randrange(1, 29):02d}/{r.randrange(1, 13):02d}/20{r.randrange(10, 30)}",
    "date_mdy": lambda r: f"{r.randrange(1, 13)}/{r.randrange(1, 29)}/{r.randrange(2010, 2030)}",
    "date_dotted": lambda r: f"{r.randrange(1, 29):02d}.{r.randrange(1, 13):02d}.20{r.randrange(10, 30)}",
    "time": lambda r: f"{r.randrange(0, 24)}:{r.randrange(0, 60):02d}",
    "time_seconds": lambda r: f"{r.randrange(0, 24):02d}:{r.randrange(0, 60):02d}:{r.randrange(0, 60):02d}",
    "datetime": lambda r: f"2024-0{r.randrange(1, 10)}-1{r.randrange(0, 9)}T{r.randrange(10, 24)}:30:00Z",
    "price": lambda r: f"${r.randrange(1, 10)},{r.randrange(100, 1000)}.{r.randrange(0, 100):02d}",
    "price_euro": lambda r: f"€{r.randrange(1, 1000)}.{r.randrange(0, 100):02d}",
    "percent": lambda r: f"{r.randrange(1, 100)}%",
    "version": lambda r: f"v{r.randrange(1, 20)}.{r.randrange(0, 20)}.{r.randrange(0, 20)}",
    "score": lambda r: f"{r.randrange(0, 8)}-{r.randrange(0, 8)}",
    "hashtag": lambda r: r.choice(["#100DaysOfCode", "#COVID19", "#2020Vision", "#Web3", "#G20", "#24HoursOfLeMans"]),
    "product": lambda r: r.choice(["iPhone15", "iPhone 15", "PS5", "Galaxy S24", "RTX 4090", "4K", "1080p", "5G"]),
    "year": lambda r: str(r.randrange(1900, 2031)),
    "count": lambda r: f"{r.randrange(1, 1000)},{r.randrange(0, 1000):03d},{r.randrange(0, 1000):03d}",
    "order_no_luhn_fail": lambda r: "#" + _bad_luhn(r),
    "order_no_plain": _bad_luhn,
    "ssn_like_short": lambda r: f"{r.randrange(100, 900)}-{r.randrange(10, 100)}-{r.randrange(100, 1000)}",
    "zip": lambda r: f"{r.randrange(10000, 99999)}" + r.choice(["", f"-{r.randrange(1000, 9999)}"]),
    "decimal": lambda r: f"{r.randrange(0, 100)}.{_digits(r, r.randrange(3, 9))}",
    "coordinates": lambda r: f"{r.randrange(-80, 80)}.{_digits(r, 4)},{r.randrange(-170, 170)}.{_digits(r, 4)}",
    "ratio": lambda r: r.choice(["16:9", "24/7", "9/11", "50/50", "1:1", "4:3"]),
    "flight": lambda r: f"{r.choice(['BA', 'LH', 'UA', 'AF'])}{r.randrange(100, 9999)}",
    "isbn": lambda r: f"978-{r.randrange(10)}-{r.randrange(10, 100)}-{r.randrange(100000, 999999)}-{r.randrange(10)}",
    "big_number": lambda r: str(r.randrange(1_000_000, 9_999_999)),
    "range": lambda r: f"{r.randrange(1, 50)}-{r.randrange(50, 100)}",
    "mac_address": lambda r: ":".join(f"{r.randrange(0, 256):02X}" for _ in range(6)),
    "at_word": lambda r: r.choice(["me@home", "meet@noon", "user@localhost"]),
    "semver_build": lambda r: f"{r.randrange(1, 9)}.{r.randrange(0, 9)}.{r.randrange(0, 9)}-rc{r.randrange(1, 5)}",
}


# --- the test set -------------------------------------------------------------------------------------------------


def build_cases(tweets: list[str], per_kind: int, per_lookalike: int, rng: random.Random) -> list[Case]:
    plan = [(kind, MAKERS[kind]) for kind in PII_KINDS for _ in range(per_kind)]
    plan += [(f"lookalike:{name}", make) for name, make in LOOKALIKES.items() for _ in range(per_lookalike)]
    cases = []
    for kind, make in plan:
        words = rng.choice(tweets).split(" ")
        cut = rng.randrange(len(words) + 1)
        prefix, suffix = rng.choice(MENTION_WRAPS if kind == "mention" else WRAPS)
        cases.append(Case(kind, make(rng), prefix, suffix, " ".join(words[:cut]), " ".join(words[cut:])))
    return cases


def _expected_token(case: Case) -> str:
    return case.prefix + (PLACEHOLDERS[case.kind] if case.is_pii else case.value) + case.suffix


def _leaked(case: Case, out: str) -> bool:
    if case.kind == "mention":  # "@ab" leaks unless no longer followed by the rest of a handle
        return re.search(re.escape(case.value) + r"(?![A-Za-z0-9_])", out) is not None
    return case.value in out


# Handles in real tweets, found independently of the stage's pattern (Python look-behind, not the stage's regex).
_REAL_HANDLE = re.compile(r"(?<![A-Za-z0-9_!#$%&*@])@([A-Za-z0-9_]+)")
_NOT_A_WORD = re.compile(r"@|https?://|www\.", re.IGNORECASE)


def evaluate(data: Path, seed: int = 0, n_per_source: int = 1500, per_kind: int = 300, per_lookalike: int = 40):
    """Scores (rates in [0, 1] with their counts) and, for --show-failures, the failing synthetic values."""
    rng = random.Random(seed)
    tweets = load_tweets(data, n_per_source, rng)
    cases = build_cases(tweets, per_kind, per_lookalike, rng)

    stage = PiiScrub(PiiScrub.Config(allow_dev_key=True))
    stage.ensure_setup()
    inputs = [c.text for c in cases] + [c.left for c in cases] + [c.right for c in cases] + tweets
    table = pa.table({"text": inputs, "author_id": pa.nulls(len(inputs), pa.string())})
    outputs = stage.annotate(table).column("text").to_pylist()
    n = len(cases)
    full, lefts, rights, real_out = outputs[:n], outputs[n : 2 * n], outputs[2 * n : 3 * n], outputs[3 * n :]

    tally: dict[str, Counter] = defaultdict(Counter)
    failures = []
    for case, out, left, right in zip(cases, full, lefts, rights):
        exact = out == _join(left, _expected_token(case), right)
        group = case.kind if case.is_pii else "lookalike"
        ok = not _leaked(case, out) if case.is_pii else (case.prefix + case.value + case.suffix) in out
        for name in {group, case.kind}:
            tally[name].update(total=1, ok=ok, exact=exact)
        if not (ok and exact):
            # the planted region only (synthetic), when the real context came through unchanged
            intact = out.startswith(left) and out.endswith(right)
            middle = out[len(left) : len(out) - len(right)].strip() if intact else None
            failures.append({"kind": case.kind, "value": case.value, "got": middle, "removed_or_kept": ok})

    for tweet, out in zip(tweets, real_out):
        handles = {h for h in _REAL_HANDLE.findall(tweet) if h.lower() != "user"}
        leaked = 0
        for h in handles:  # "@h" may also occur where it is no mention ("word@h"); those may stay
            at_h = "@" + re.escape(h) + r"(?![A-Za-z0-9_])"
            leaked += len(re.findall(at_h, out)) > len(re.findall(r"(?<=[A-Za-z0-9_!#$%&*@])" + at_h, tweet))
        tally["real_mentions"].update(total=len(handles), ok=len(handles) - leaked)
        words = Counter(w for w in tweet.split() if not _NOT_A_WORD.search(w))
        kept = words & Counter(out.split())
        tally["real_words"].update(total=sum(words.values()), ok=sum(kept.values()))

    scores = {name: _rates(c) for name, c in sorted(tally.items())}
    scores["pii_values"] = _rates(sum((tally[k] for k in PII_KINDS if k != "mention"), Counter()))
    return scores, failures


def _rates(c: Counter) -> dict:
    rates = {"rate": round(c["ok"] / c["total"], 4), "n": c["total"]}
    if "exact" in c:  # planted cases only: the output is exactly scrub(left) + expected token + scrub(right)
        rates["exact"] = round(c["exact"] / c["total"], 4)
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show-failures", action="store_true", help="print failing synthetic values (no tweet text)")
    args = parser.parse_args(argv)
    scores, failures = evaluate(args.data, seed=args.seed)
    print(json.dumps(scores, indent=1))
    if args.show_failures:
        for f in failures:
            print(json.dumps(f, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
