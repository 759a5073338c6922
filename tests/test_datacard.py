"""The data card: markdown + PNG charts from a version's rows and report, aggregates only."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.image as mpimg
import polars as pl
import pytest

from tests.curated import curated_rows, publish_run, report_for
from transforms.datacard import write_data_card
from transforms.versions import diff, shard_uris

STAGES = ("normalize", "dedupe_exact", "langid", "dedupe_minhash", "toxicity", "pii")


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("card") / "table"
    publish_run(path, curated_rows(300, seed=1), "20240101T000000Z-aaaa")
    rows = curated_rows(500, seed=2, first_id=1_600_000_000_000_000_000)
    rows = rows.set_column(rows.column_names.index("pii_types"), "pii_types",
                           pl.Series([["email"], ["email", "phone"]] + [[]] * 498).to_arrow())
    publish_run(path, rows, "20240102T000000Z-bbbb")
    return path


def _report():
    report = report_for("20240102T000000Z-bbbb", 500, STAGES, dropped={"dedupe_exact": 40, "langid": 25}, rejected=7)
    report["stages"][1]["reasons"] = {"duplicate": 30, "retweet": 10}
    return report


def _images(card: Path) -> list[Path]:
    return [card.parent / name for name in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card.read_text())]


def test_card_with_every_section(table, tmp_path):
    card = write_data_card(table, 1, _report(), [Path(u) for u in shard_uris(table, 1)], diff(table, 0, 1), tmp_path)
    text = card.read_text()
    images = _images(card)
    assert [p.name for p in images] == ["funnel.png", "languages.png", "text_length.png", "toxicity.png"]
    for image in images:
        pixels = mpimg.imread(image)
        assert pixels.shape[0] > 200 and pixels.shape[1] > 600 and pixels.std() > 0.05  # a real, non-blank chart
    assert "| rows | 800 |" in text
    assert "| read | 572 | 565 | 7 | unparseable 7 |" in text
    assert "| dedupe_exact | 565 | 525 | 40 | duplicate 30, retweet 10 |" in text
    rows = pl.read_delta(str(table), version=1)
    shown = {m[0]: int(m[1].replace(",", "")) for m in re.findall(r"^\| (\w\w) \| ([\d,]+) \| [\d.]+% \|$", text, re.M)}
    assert shown == dict(rows.group_by("lang").len().iter_rows())
    assert "| email | 2 | 0.2% |" in text and "| phone | 1 | 0.1% |" in text
    assert "300 -> 800 rows: 500 added, 0 removed (by id)." in text
    assert not any(i in text for i in rows["id"].to_list())  # aggregates only
    assert not any(t in text for t in rows["text"].to_list() if len(t) > 12)


def test_card_follows_the_columns_present(table, tmp_path):
    stages = ("normalize", "dedupe_exact")
    path = tmp_path / "plain"
    publish_run(path, curated_rows(100, seed=3, stages=stages), "20240103T000000Z-cccc", stages=stages)
    report = report_for("20240103T000000Z-cccc", 100, stages)
    card = write_data_card(path, 0, report, shard_uris(path, 0), None, tmp_path / "card")
    text = card.read_text()
    assert [p.name for p in _images(card)] == ["funnel.png", "text_length.png"]
    assert "## Languages" not in text and "## Toxicity" not in text and "Changes since" not in text
    assert sorted(p.name for p in (tmp_path / "card").iterdir()) == ["DATACARD.md", "funnel.png", "text_length.png"]
