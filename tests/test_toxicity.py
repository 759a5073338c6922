import hashlib
import json
import pickle

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from pydantic import ValidationError

from transforms.stages import stage_class
from transforms.stages.toxicity import DEFAULT_MODEL, Toxicity, ToxicityConfig, prepare_series
from transforms.training.toxicity import (
    CARD_FILE,
    TASKS,
    Params,
    Quantization,
    WordVectors,
    fit,
    load_split,
    macro_f1,
    model_card,
    stratified_folds,
    train_toxicity,
    train_transformer,
    words_of,
)
from transforms.training.teacher import TeacherSettings

METRICS = json.loads((DEFAULT_MODEL.parent / "metrics.json").read_text())
# What the model card claims on TweetEval val, at the shipped threshold (metrics.json holds the exact figures).
CLAIMED_VAL_MACRO_F1 = {"offensive": 0.745, "hate": 0.65}

# Hand-written, unmistakable cases for the shipped model.
INSULTS = [
    "you are a fucking idiot",
    "shut up you stupid bitch",
    "what a pathetic piece of shit you are",
    "@user go to hell you disgusting moron",
]
BENIGN = [
    "have a lovely day with your family",
    "the new library opens on monday at nine",
    "thank you so much for the birthday wishes",
    "@user great game last night, congrats to the team",
]


def _stage(**settings) -> Toxicity:
    stage = Toxicity(ToxicityConfig(**settings))
    stage.ensure_setup()
    return stage


def _table(texts, lang=None) -> pa.Table:
    columns = {"text": pa.array(texts, pa.string())}
    if lang is not None:
        columns["lang"] = pa.array(lang, pa.string())
    return pa.table(columns)


def _scores(stage, texts, lang=None):
    out = stage.annotate(_table(texts, lang))
    return out.column("toxicity").to_pylist(), out.column("is_toxic").to_pylist()


def _with(table, columns):
    for name in columns.column_names:
        table = table.append_column(name, columns[name])
    return table


def test_catalogue_resolves_to_this_stage():
    assert stage_class("toxicity") is Toxicity


def test_prepare_masks_handles_urls_and_splits_tokens():
    got = prepare_series(pl.Series(["Check https://t.co/Ab1 @Real_Name!! #BuildTheWall in 2019 &amp; 😀\nok"]))
    assert got.str.split(" ").list.eval(pl.element().filter(pl.element() != "")).to_list() == [
        "check http @user ! ! # build the wall in 0 & 😀 ok".split(" ")
    ]
    assert not got.str.contains("\n").any()


def test_shipped_model_separates_insults_from_benign_tweets():
    stage = _stage()
    insults, _ = _scores(stage, INSULTS)
    benign, _ = _scores(stage, BENIGN)
    assert min(insults) > max(benign)
    assert min(insults) >= stage._threshold > max(benign)


def test_scores_are_probabilities_and_threshold_splits_them():
    texts = INSULTS + BENIGN
    scores, _ = _scores(_stage(), texts)
    scores = np.array(scores, dtype=np.float32)
    assert scores.dtype == np.float32 and ((scores >= 0) & (scores <= 1)).all()
    cut = float(np.sort(scores)[len(scores) // 2])  # a threshold equal to one of the scores: >= must flag that row
    got, flags = _scores(_stage(threshold=cut), texts)
    assert np.array_equal(np.array(flags), np.array(got, dtype=np.float32) >= np.float32(cut))
    assert 0 < sum(flags) < len(texts) and flags[int(np.argmin(np.abs(scores - cut)))]
    assert all(_scores(_stage(threshold=0.0), texts)[1])


def test_default_threshold_is_the_tuned_one():
    assert _stage()._threshold == METRICS["threshold"]
    assert 0 < METRICS["threshold"] < 1


def test_shipped_model_card_is_the_one_its_training_run_writes():
    """The card says "do not edit by hand": it must be what the template renders from the shipped metrics.json, so
    the figures it states are the measured ones."""
    card = (DEFAULT_MODEL.parent / CARD_FILE).read_text()
    assert card == model_card(METRICS)
    assert f"{METRICS['val_macro_f1']['offensive']:.4f}" in card and f"{METRICS['model_bytes']:,}" in card


def test_handles_and_urls_do_not_change_the_score():
    stage = _stage()
    a, _ = _scores(stage, ["@user you are a clown http", "@user nice photo"])
    b, _ = _scores(stage, ["@Some_Real_Handle you are a clown https://t.co/xYz12", "@another nice photo"])
    assert a == b


def test_non_english_rows_get_null_unless_asked():
    texts = [INSULTS[0], INSULTS[0], INSULTS[0], BENIGN[0]]
    lang = ["en", "fr", None, "und"]
    scores, flags = _scores(_stage(), texts, lang)
    assert [s is None for s in scores] == [False, True, False, True]
    assert [f is None for f in flags] == [False, True, False, True]
    everything, _ = _scores(_stage(non_english="score"), texts, lang)
    no_lang_column, _ = _scores(_stage(), texts)
    assert None not in everything and everything == no_lang_column
    assert everything[1] == scores[0]
    widened, _ = _scores(_stage(languages=("en", "fr")), texts, lang)
    assert [s is None for s in widened] == [False, False, False, True]


def test_drop_reasons_follow_is_toxic_and_action():
    table = _table(INSULTS[:2] + BENIGN[:2] + [INSULTS[2]], ["en", "en", "en", "en", "de"])
    stage = _stage()
    annotated = _with(table, stage.annotate(table))
    reasons = stage.drop_reasons(annotated).to_pylist()
    assert reasons == ["toxic", "toxic", None, None, None]  # the German row is unscored, so kept
    assert _stage(action="annotate").drop_reasons(annotated).null_count == table.num_rows


def test_pickled_stage_reloads_its_model_and_scores_alike():
    stage = _stage(threshold=0.4)
    shipped = pickle.dumps(stage)
    # The packaged model travels by name, not by this install's path (a worker's install lives elsewhere).
    assert stage.config.model_path == "packaged" and str(DEFAULT_MODEL.parent).encode() not in shipped
    clone = pickle.loads(shipped)
    assert clone.config == stage.config and clone.config.model_file() == DEFAULT_MODEL
    assert _scores(clone, INSULTS + BENIGN) == _scores(stage, INSULTS + BENIGN)


def test_chunked_and_empty_tables():
    stage = _stage()
    whole = stage.annotate(_table(INSULTS + BENIGN))
    chunked = pa.Table.from_batches(_table(INSULTS + BENIGN).to_batches(max_chunksize=3))
    assert chunked.column("text").num_chunks > 1
    assert stage.annotate(chunked).equals(whole)
    blank, _ = _scores(stage, ["", "   ", "\n", "😀"])
    assert all(0 <= s <= 1 for s in blank)
    empty = stage.annotate(_table([]))
    assert empty.num_rows == 0 and empty.schema.equals(pa.schema(Toxicity.writes))


def test_config_validation(tmp_path):
    with pytest.raises(ValidationError):
        ToxicityConfig(threshold=1.5)
    with pytest.raises(ValidationError):
        ToxicityConfig(non_english="guess")
    model = tmp_path / "model.ftz"
    model.write_bytes(DEFAULT_MODEL.read_bytes())
    with pytest.raises(FileNotFoundError, match="threshold"):
        _stage(model_path=model)
    assert _stage(model_path=model, threshold=0.3)._threshold == 0.3


def test_macro_f1_by_hand():
    labels = np.array([1, 1, 0, 0])
    probs = np.array([0.9, 0.4, 0.6, 0.1])
    # 0.5: tp=fp=fn=tn=1 -> both F1s 0.5.  0.3: tp=2 fp=1 tn=1 -> (4/5 + 2/3) / 2.  0.95: nothing flagged.
    got = macro_f1(labels, probs, np.array([0.5, 0.3, 0.95]))
    assert np.allclose(got, [0.5, (0.8 + 2 / 3) / 2, (0 + 2 / 3) / 2])


def test_stratified_folds_keep_balance_and_are_seeded():
    labels = np.array([1] * 30 + [0] * 71)
    folds = stratified_folds(labels, 5, seed=3)
    for k in range(5):
        assert (labels[folds == k] == 1).sum() == 6
        assert (labels[folds == k] == 0).sum() in (14, 15)
    assert np.array_equal(folds, stratified_folds(labels, 5, seed=3))
    assert not np.array_equal(folds, stratified_folds(labels, 5, seed=4))


def test_fits_are_identical_after_heap_churn(tmp_path):
    """fastText leaves most of its input matrix uninitialised with one thread (transforms/training/fasttext_fit.py):
    a small matrix must not pick up the garbage that earlier, freed allocations leave on the heap."""
    _synthetic_tweeteval(tmp_path, neutral=np.array([f"w{i}" for i in range(300)]))
    texts, labels = load_split(tmp_path, "offensive", "train")
    params = Params(dim=16, epoch=5, lr=0.5, word_ngrams=1, minn=0, maxn=0, bucket=0)  # a 300 x 16 matrix
    outputs = []
    for garbage in (0x00, 0x7F, 0xFF):
        blocks = [np.full(2**20 * size, garbage, dtype=np.uint8) for size in (64, 1, 4, 16)]
        del blocks  # freed: their pages are what a careless allocation would be handed next
        model = fit(prepare_series(texts), labels, params, seed=3, workdir=tmp_path)
        outputs.append(model.get_input_matrix().tobytes() + model.get_output_matrix().tobytes())
    assert outputs[0] == outputs[1] == outputs[2]


class _Encodings:
    """Stands in for the teacher (our own seam): a fixed random encoding per word."""

    def word_encodings(self, words):
        return np.stack([np.random.default_rng(int(hashlib.sha256(w.encode()).hexdigest()[:8], 16)).normal(size=12)
                         for w in words]).astype(np.float32)


def test_the_student_starts_from_the_teachers_word_vectors_of_its_own_training_words(tmp_path):
    every = prepare_series(pl.Series(["you stupid idiot", "lovely day at the river", "@user what a moron!!"]))
    assert words_of(every).to_list() == sorted({"you", "stupid", "idiot", "lovely", "day", "at", "the", "river",
                                                "@user", "what", "a", "moron", "!"})
    vectors = WordVectors(_Encodings(), every)
    reduced = vectors.reduced(4, scale=2.0)
    assert reduced.shape == (13, 4) and np.isclose(np.linalg.norm(reduced, axis=1).mean(), 2.0)
    assert np.array_equal(reduced, WordVectors(_Encodings(), every).reduced(4, scale=2.0))
    fold = every[:2]  # a fold model's training texts: the third tweet is held out
    params = Params(dim=4, epoch=1, lr=1e-9, word_ngrams=1, minn=0, maxn=0, bucket=0, vector_scale=2.0)
    model = fit(fold, np.array([1, 0]), params, seed=0, workdir=tmp_path, word_vectors=vectors)
    assert sorted(w for w in model.get_words() if w != "</s>") == words_of(fold).to_list()  # no held-out word
    for word, row in zip(vectors.words.to_list(), reduced):
        if word in model.get_words():  # the row it starts from (a learning rate of ~0 leaves it there)
            assert np.allclose(model.get_word_vector(word), row, atol=1e-5)
    with pytest.raises(ValueError, match="WordVectors"):
        fit(fold, np.array([1, 0]), params, seed=0, workdir=tmp_path)


EVERYDAY_WORDS = np.array(
    "table garden river morning coffee music window train paper bread summer city phone street light game friend "
    "school water chair cloud market bridge apple pencil forest ticket kitchen doctor winter".split()
)


def _synthetic_tweeteval(root, seed=0, neutral=EVERYDAY_WORDS):
    """TweetEval's layout: `neutral` words, and positives carry one of their task's marker words (real words, so
    that even a briefly fine-tuned MiniLM teacher tells them apart)."""
    rng = np.random.default_rng(seed)
    markers = {"offensive": np.array(["idiot", "moron", "scum"]), "hate": np.array(["vermin", "invaders", "parasites"])}
    for task in TASKS:
        (root / task).mkdir(parents=True)
        for split, n in (("train", 400), ("val", 200)):
            labels = rng.integers(0, 2, n)
            words = pl.Series(rng.choice(neutral, size=(n, 8)).tolist()).list.join(" ")
            marker = pl.Series(np.where(labels == 1, " " + rng.choice(markers[task], n), ""))
            (root / task / f"{split}_text.txt").write_text("\n".join((words + marker).to_list()) + "\n")
            np.savetxt(root / task / f"{split}_labels.txt", labels, fmt="%d")
    # An unlabeled source beside it, in the shared data's layout, for the teacher to label.
    pool = root.parent / "xlm_t" / "english"
    pool.mkdir(parents=True)
    words = pl.Series(rng.choice(neutral, size=(200, 8)).tolist()).list.join(" ")
    marker = pl.Series(np.where(rng.integers(0, 2, 200) == 1, " " + rng.choice(markers["offensive"], 200), ""))
    (pool / "train_text.txt").write_text("\n".join((words + marker).to_list()) + "\n")


@pytest.mark.slow
def test_training_is_reproducible(tmp_path):
    _synthetic_tweeteval(tmp_path / "data")
    settings = dict(
        grid=(Params(dim=16, epoch=5, lr=0.5, word_ngrams=2, minn=0, maxn=0, bucket=600_000, vector_scale=4.0),),
        folds=2,
        quantization=Quantization(cutoff=5_000),
        teacher=TeacherSettings(epochs=1, lr=2e-4, batch_size=16, max_length=16, threads=1),
    )
    first = train_toxicity(tmp_path / "data", tmp_path / "a", seed=7, **settings)
    second = train_toxicity(tmp_path / "data", tmp_path / "b", seed=7, **settings)
    assert first == second  # the teacher's labels and figures too
    # The teacher trained alone, for the stage's transformer, is that teacher: the same val figure, to the digit.
    tiny = settings["teacher"]
    saved = [train_transformer(tmp_path / "data", tmp_path / f"t{i}", seed=7, teacher=tiny) for i in (1, 2)]
    assert saved[0] == saved[1] == json.loads((tmp_path / "t1" / "classifier.json").read_text())
    assert saved[0]["val_macro_f1"]["offensive"] == first["teacher"]["val_macro_f1_offensive"] > 0.9
    for name in ("model.safetensors", "head.safetensors", "tokenizer.json", "config.json"):
        assert (tmp_path / "t1" / name).read_bytes() == (tmp_path / "t2" / name).read_bytes()
    texts, labels = load_split(tmp_path / "data", "offensive", "val")
    rescored = _stage(model_path=tmp_path / "a" / "toxicity.ftz", transformer={"path": tmp_path / "t1", "margin": 1.0})
    flags = rescored.annotate(pa.table({"text": texts.to_arrow()})).column("is_toxic").to_numpy(zero_copy_only=False)
    assert abs(macro_f1(labels, flags.astype(np.float64), np.array([0.5]))[0] - saved[0]["val_macro_f1"]["offensive"]) < 0.02
    assert first["pool"]["sources"]["xlm_t english train"] == 200
    assert first["pool"]["rows_used"] > 0
    assert (tmp_path / "a" / "toxicity.ftz").read_bytes() == (tmp_path / "b" / "toxicity.ftz").read_bytes()
    assert all(f > 0.9 for f in first["val_macro_f1"].values())
    texts = load_split(tmp_path / "data", "hate", "val")[0].to_list()
    scores = [
        _scores(_stage(model_path=tmp_path / run / "toxicity.ftz"), texts)[0] for run in ("a", "b")
    ]
    assert scores[0] == scores[1]


@pytest.mark.slow
def test_shipped_model_reaches_its_recorded_val_scores(shared_data):
    data = shared_data / "tweeteval"
    for name, digest in METRICS["data_sha256"].items():
        assert hashlib.sha256((data / name).read_bytes()).hexdigest() == digest, name
    assert hashlib.sha256(DEFAULT_MODEL.read_bytes()).hexdigest() == METRICS["model_sha256"]
    stage = _stage()
    for task in TASKS:
        texts, labels = load_split(data, task, "val")
        flags = np.array(stage.annotate(pa.table({"text": texts.to_arrow()})).column("is_toxic").to_pylist())
        f1 = float(macro_f1(labels, flags.astype(np.float64), np.array([0.5]))[0])
        assert abs(f1 - METRICS["val_macro_f1"][task]) < 1e-6, task
        assert f1 >= CLAIMED_VAL_MACRO_F1[task], task
