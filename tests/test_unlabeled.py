import json

import polars as pl

from transforms.training.unlabeled import SOURCES, unlabeled_tweets


def _shared_layout(root):
    semeval = root / "semeval2017_task4a" / "downloaded"
    semeval.mkdir(parents=True)
    (semeval / "twitter-2013train-A.tsv").write_text(
        "1\tpositive\t@Alice loves it\\u002c see https://t.co/x1 &amp; more\n"
        "2\tneutral\tshort\n"  # under min_chars
        "3\tnegative\tthe same tweet twice over\n"
    )
    (semeval / "twitter-2016train-A.tsv").write_text("4\tnegative\tthe same tweet twice over\n")
    (semeval / "twitter-2016test-A.tsv").write_text("5\tneutral\ta test split tweet, never read\t\n")
    crisis = root / "crisislex" / "CrisisLexT6" / "2013_Flood"
    crisis.mkdir(parents=True)
    (crisis / "2013_Flood-ontopic_offtopic.csv").write_text(
        'tweet id, tweet, label\n\'1\',"water everywhere, stay safe",on-topic\n\'2\',"a labelled val tweet here",off-topic\n'
    )
    btc = root / "broad_twitter_corpus" / "raw_json"
    btc.mkdir(parents=True)
    (btc / "a.json").write_text(json.dumps({"text": "RT @bob: what a goal that was"}) + "\nnot json\n")


def test_pool_reads_train_side_sources_in_tweeteval_form(tmp_path):
    _shared_layout(tmp_path)
    exclude = pl.Series(["a labelled val tweet here"])
    pool, counts = unlabeled_tweets(tmp_path, exclude)
    assert sorted(pool.to_list()) == sorted(
        [
            "@user loves it, see http & more",
            "the same tweet twice over",
            "water everywhere, stay safe",
            "RT @user: what a goal that was",
        ]
    )
    assert counts == {
        "semeval2013-16 train/dev": 4,
        "crisislex T6 + T26": 2,
        "broad_twitter_corpus a, b, e": 1,
        "xlm_t english train": 0,  # absent: skipped
    }
    assert set(counts) == set(SOURCES)


def test_pool_of_an_empty_folder_is_empty(tmp_path):
    pool, counts = unlabeled_tweets(tmp_path, pl.Series([], dtype=pl.String))
    assert pool.len() == 0 and set(counts.values()) == {0}
