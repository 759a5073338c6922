"""The toxicity stage's transformer: the fine-tuned MiniLM teacher, saved by training, rescoring the rows fastText is
least sure of. A small teacher is fine-tuned here on synthetic tweets (real words as markers, ~10 s;
tests/helpers.py)."""

import pickle

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from pydantic import ValidationError

from tests.helpers import small_toxicity_transformer, synthetic_toxic_tweets
from transforms.config import PipelineConfig
from transforms.stages.base import SetupError
from transforms.stages.toxicity import (
    TRANSFORMER_INFO,
    Toxicity,
    ToxicityConfig,
    TransformerScorer,
    onto_threshold,
    transformer_text,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("transformer")
    return small_toxicity_transformer(folder), folder


def _stage(folder=None, margin=0.2, **settings) -> Toxicity:
    transformer = None if folder is None else {"path": folder, "margin": margin, "device": "cpu", "batch_size": 8}
    stage = Toxicity(ToxicityConfig(transformer=transformer, **settings))
    stage.ensure_setup()
    return stage


def _mixed() -> list[str]:
    texts, _ = synthetic_toxic_tweets(60, 1)
    return texts + ["you are a fucking idiot", "have a lovely day", "@Someone what a moron https://t.co/x1", "", "ok"]


def test_onto_threshold_keeps_the_order_and_the_verdict():
    p = np.concatenate([[0.0, 0.5, 1.0, np.nextafter(np.float32(0.5), np.float32(0))],
                        np.random.default_rng(0).random(5000)]).astype(np.float32)
    for threshold in (0.66, 0.5, 0.1, 0.93):
        moved = onto_threshold(p, 0.5, threshold)
        assert moved.dtype == np.float32 and ((moved >= 0) & (moved <= 1)).all()
        assert np.array_equal(moved >= np.float32(threshold), p >= 0.5)
        order = np.argsort(p, kind="stable")
        assert (np.diff(moved[order]) >= 0).all()
        assert moved[0] == 0 and moved[2] == 1 and moved[1] == np.float32(threshold)


def test_transformer_text_is_tweeteval_shaped():
    got = pl.Series(["@Real_Name look https://t.co/Ab1\n\nat  www.x.org/a this @b", "plain"]).to_frame("t")
    assert got.select(transformer_text(pl.col("t"))).to_series().to_list() == ["@user look at this @user", "plain"]


def test_the_saved_transformer_scores_as_the_teacher_did(trained):
    teacher, folder = trained
    texts, labels = synthetic_toxic_tweets(80, 2)
    scorer = TransformerScorer(folder, "cpu", 8)
    assert scorer.threshold == 0.5
    got = scorer.probability(pl.Series(texts))
    np.testing.assert_allclose(got, teacher.predict(texts), atol=1e-4)  # other padding, so not to the last bit
    assert ((got >= 0.5) == labels.astype(bool)).mean() > 0.9  # it learnt the markers


def test_a_model_is_saved_as_the_same_files_whatever_its_tokenizer_did_last(trained, tmp_path):
    teacher, folder = trained
    teacher._tokenizer(["a tweet"], truncation=True, max_length=7, padding="max_length")
    teacher.save(tmp_path, val_macro_f1_offensive=0.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in folder.iterdir())
    for path in folder.iterdir():
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


def test_only_the_rows_fasttext_is_unsure_of_are_rescored(trained):
    _, folder = trained
    texts = _mixed()
    lang = ["en"] * (len(texts) - 1) + ["fr"]
    table = pa.table({"text": pa.array(texts), "lang": pa.array(lang)})
    alone = _stage().annotate(table)
    fast = np.array(alone.column("toxicity").to_pylist()[:-1], dtype=np.float32)
    # A band that takes the rows nearest the threshold and leaves the rest, whatever the shipped model's scores.
    distance = np.unique(np.abs(fast - np.float32(_stage()._threshold)))
    margin = float(distance[:2].mean())
    stage = _stage(folder, margin=margin)
    both = stage.annotate(table)
    scores = np.array(both.column("toxicity").to_pylist()[:-1], dtype=np.float32)
    unsure = np.abs(fast - np.float32(stage._threshold)) <= margin
    assert 0 < unsure.sum() < len(unsure)
    assert np.array_equal(scores[~unsure], fast[~unsure])
    rescored = TransformerScorer(folder, "cpu", 8).probability(pl.Series(texts[:-1]).filter(pl.Series(unsure)))
    assert np.array_equal(scores[unsure], onto_threshold(rescored, 0.5, stage._threshold))
    flags = np.array(both.column("is_toxic").to_pylist()[:-1])
    assert np.array_equal(flags, scores >= np.float32(stage._threshold))
    assert both.column("toxicity")[-1].as_py() is None and both.column("is_toxic")[-1].as_py() is None
    everything = _stage(folder, margin=1.0).annotate(table)
    p = TransformerScorer(folder, "cpu", 8).probability(pl.Series(texts[:-1]))
    assert everything.column("is_toxic").to_pylist()[:-1] == (p >= 0.5).tolist()
    # A stricter threshold applies to rescored rows too: their scores sit on the fastText model's tuned scale.
    strict = _stage(folder, margin=1.0, threshold=0.9).annotate(table)
    moved = onto_threshold(p, 0.5, stage._scale)
    assert stage._scale == stage._threshold  # the default threshold is the tuned one
    assert strict.column("toxicity").to_pylist()[:-1] == moved.tolist()
    assert strict.column("is_toxic").to_pylist()[:-1] == (moved >= np.float32(0.9)).tolist()
    assert 0 < sum(strict.column("is_toxic").to_pylist()[:-1]) < sum(everything.column("is_toxic").to_pylist()[:-1])


def test_a_rows_score_does_not_depend_on_its_batch(trained):
    _, folder = trained
    texts = _mixed()
    stage = _stage(folder, margin=1.0)
    whole = stage.annotate(pa.table({"text": texts}))
    chunked = pa.Table.from_batches(pa.table({"text": texts}).to_batches(max_chunksize=7))
    pieces = [stage.annotate(pa.table({"text": texts[i:i + 5]})) for i in range(0, len(texts), 5)]
    backwards = stage.annotate(pa.table({"text": texts[::-1]}))
    assert stage.annotate(chunked).equals(whole)
    assert pa.concat_tables(pieces).equals(whole)
    assert backwards.column("toxicity").to_pylist()[::-1] == whole.column("toxicity").to_pylist()


def test_the_transformer_travels_by_its_settings_and_is_checked(trained, tmp_path):
    _, folder = trained
    stage = _stage(folder, margin=0.5)
    clone = pickle.loads(pickle.dumps(stage))
    texts = _mixed()
    assert clone.annotate(pa.table({"text": texts})).equals(stage.annotate(pa.table({"text": texts})))
    assert stage.resources.gpu is False and str(folder / TRANSFORMER_INFO) in stage.resources.model_files
    assert Toxicity(ToxicityConfig(transformer={"path": folder})).resources.gpu is True  # device auto
    with pytest.raises(ValidationError):
        ToxicityConfig(transformer={"path": folder, "margin": 1.5})
    with pytest.raises(ValidationError):
        ToxicityConfig(transformer={"path": folder, "device": "gpu"})
    settings = {"toxicity": {"transformer": {"path": str(tmp_path / "nowhere")}}}
    with pytest.raises(ValueError, match="toxicity: model file not found: .*nowhere"):
        PipelineConfig(stages=["normalize", "toxicity"], settings=settings)
    empty = stage.annotate(pa.table({"text": pa.array([], pa.string())}))
    assert empty.num_rows == 0 and empty.schema.equals(pa.schema(Toxicity.writes))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    for name in folder.iterdir():
        (foreign / name.name).symlink_to(name)
    (foreign / TRANSFORMER_INFO).unlink()
    (foreign / TRANSFORMER_INFO).write_text("{}")
    with pytest.raises(ValueError, match="has no 'threshold': not a transformer saved by `tweetmill train-toxicity"):
        Toxicity(ToxicityConfig(transformer={"path": foreign})).ensure_setup()
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(SetupError, match="settings.toxicity.transformer.device is 'cuda', but torch sees no GPU"):
            Toxicity(ToxicityConfig(transformer={"path": folder, "device": "cuda"})).ensure_setup()


def test_the_cli_trains_it_into_a_folder_the_user_names(capsys):
    from flows.cli import build_parser, cmd_train

    args = build_parser().parse_args(["train-toxicity-transformer", "--out", "somewhere", "--seed", "2"])
    assert (args.func, args.out, args.seed) == (cmd_train, "somewhere", 2)
    with pytest.raises(SystemExit):  # never into the package: ~90 MB
        build_parser().parse_args(["train-toxicity-transformer"])
    assert "--out" in capsys.readouterr().err


def test_a_gpu_a_scheduler_gives_the_task_becomes_the_transformer_device(monkeypatch, tmp_path):
    """on_gpu moves the transformer (the stage's one GPU work) onto the task's GPU and changes nothing else; fastText
    alone, or a transformer set to the CPU, asks for no GPU and stays as it is."""
    from transforms.stages import toxicity

    monkeypatch.setattr(toxicity, "assigned_device", lambda address: f"cuda:{address}")
    config = ToxicityConfig(threshold=0.6, transformer={"path": tmp_path, "margin": 0.2, "batch_size": 8})
    placed = Toxicity(config).on_gpu("3")
    assert placed.config.transformer.device == "cuda:3"
    assert placed.config.model_copy(update={"transformer": config.transformer}) == config
    for stage in (Toxicity(), Toxicity(ToxicityConfig(transformer={"path": tmp_path, "device": "cpu"}))):
        assert not stage.resources.gpu and stage.on_gpu("3") is stage
