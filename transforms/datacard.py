"""The data card of a published version: a markdown page with PNG charts, for the people who train on it.

It says how many rows there are and where the others went (the funnel of drops per stage, with reasons), what the
rows look like (language mix, text length, toxicity, personal data replaced) and what changed since the previous
version. Only aggregates: no tweet text, id or handle appears on the card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.dataset as ds  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

TOP_LANGUAGES = 12
COLORS = {"kept": "#4C78A8", "dropped": "#E45756", "other": "#9D9D9D"}
CARD = "DATACARD.md"


def _count(n: float) -> str:
    return f"{n:,.0f}"


def _axis_counts(ax, axis: str = "x") -> None:
    fmt = FuncFormatter(lambda v, _: f"{v / 1e6:g}M" if v >= 1e6 else (f"{v / 1e3:g}k" if v >= 1e3 else f"{v:g}"))
    (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(fmt)


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], align: str = "") -> list[str]:
    """A markdown table; align: "l" or "r" per column (default: the first left, names; the others right, numbers)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"] + [
        "| " + " | ".join(str(c) for c in r) + " |" for r in rows
    ]


def _reasons(reasons: dict[str, int]) -> str:
    return ", ".join(f"{k} {_count(v)}" for k, v in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))


def _funnel(report: dict, out_dir: Path) -> list[str]:
    steps = [("read", report["input_records"], report["rejected"], {"unparseable": report["rejected"]})]
    steps += [(s["name"], s["input"], s["dropped"], s.get("reasons", {})) for s in report.get("stages", [])]
    lines = _table(
        ["step", "in", "out", "dropped", "reasons"],
        [(name, _count(n), _count(n - d), _count(d), _reasons(r) if d else "") for name, n, d, r in steps],
        align="lrrrl",
    )
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(steps) + 1.2))
    labels = [s[0] for s in steps][::-1]
    kept = np.array([s[1] - s[2] for s in steps][::-1], dtype=float)
    dropped = np.array([s[2] for s in steps][::-1], dtype=float)
    ax.barh(labels, kept, color=COLORS["kept"], label="kept")
    ax.barh(labels, dropped, left=kept, color=COLORS["dropped"], label="dropped")
    top = float((kept + dropped).max()) if len(kept) else 1.0
    for y, (k, d) in enumerate(zip(kept, dropped)):
        label = f"{_count(k)} kept" + (f", {_count(d)} dropped" if d else "")
        ax.text(k + d + top * 0.01, y, label, va="center", fontsize=9)
    ax.set_xlim(0, top * 1.45 or 1)
    _axis_counts(ax)
    ax.set_xlabel("rows")
    read, published = _count(report["input_records"]), _count(report["output_records"])
    ax.set_title(f"Where the rows went: {read} read, {published} published")
    ax.legend(loc="lower right", frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    image = _save(fig, out_dir / "funnel.png")
    return ["## Where the rows went (the run that published this version)", "", f"![funnel]({image})", "", *lines, ""]


def _languages(rows: pl.LazyFrame, total: int, out_dir: Path) -> list[str]:
    counts = (rows.group_by(pl.col("lang").fill_null("(none)")).len()
              .sort(["len", "lang"], descending=[True, False]).collect())
    top = counts.head(TOP_LANGUAGES)
    other = int(counts["len"].sum() - top["len"].sum())
    names, values = top["lang"].to_list(), top["len"].to_list()
    if other:
        names, values = names + ["other"], values + [other]
    share = [v / total if total else 0.0 for v in values]
    fig, ax = plt.subplots(figsize=(8, 0.38 * len(names) + 1.2))
    ax.barh(names[::-1], values[::-1], color=[COLORS["other"] if n == "other" else COLORS["kept"] for n in names[::-1]])
    for y, (v, s) in enumerate(zip(values[::-1], share[::-1])):
        ax.text(v, y, f"  {s:.1%}", va="center", fontsize=9)
    ax.set_xlim(0, max(values, default=1) * 1.18)
    _axis_counts(ax)
    ax.set_xlabel("rows")
    ax.set_title(f"Language mix ({counts.height} languages)")
    ax.spines[["top", "right"]].set_visible(False)
    table = _table(["language", "rows", "share"], [(n, _count(v), f"{s:.1%}") for n, v, s in zip(names, values, share)])
    return ["## Languages", "", f"![languages]({_save(fig, out_dir / 'languages.png')})", "", *table, ""]


def _histogram(values: np.ndarray, bins: np.ndarray, title: str, xlabel: str, path: Path,
               marks: dict[str, float]) -> str:
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.hist(values, bins=bins, color=COLORS["kept"])
    for i, (label, x) in enumerate(marks.items()):
        ax.axvline(x, color="#333333", linestyle="--" if i else "-", linewidth=1)
        ax.text(x, ax.get_ylim()[1] * (0.97 - 0.1 * i), f"{label}", fontsize=9, va="top", ha="left",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1.5})
    _axis_counts(ax, "y")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    ax.set_title(title)
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, path)


def _text_length(shards: Sequence[str], out_dir: Path) -> list[str]:
    # Batch by batch: only the lengths are kept, never the version's whole text column.
    batches = ds.dataset(list(shards), format="parquet").to_batches(
        columns=["text"], batch_size=65_536, batch_readahead=1, fragment_readahead=1)
    lengths = np.concatenate([np.zeros(0, np.int32)] + [
        pc.utf8_length(b.column(0)).drop_null().to_numpy() for b in batches])
    if not len(lengths):
        return []
    p5, p50, p95 = np.percentile(lengths, [5, 50, 95])
    top = max(float(np.percentile(lengths, 99.5)), 1.0)
    width = max(1, int(np.ceil(top / 60)))  # whole characters per bin: fractional bins alias on integers
    bins = np.arange(0, top + width, width) - 0.5
    image = _histogram(np.minimum(lengths, top), bins, "Text length (characters; the longest 0.5% at the right edge)",
                       "characters", out_dir / "text_length.png", {f"median {p50:.0f}": p50, f"95% {p95:.0f}": p95})
    stats = _table(["p5", "median", "p95", "max"], [(f"{p5:.0f}", f"{p50:.0f}", f"{p95:.0f}", f"{lengths.max():,}")])
    return ["## Text length (characters)", "", f"![text length]({image})", "", *stats, ""]


def _toxicity(rows: pl.LazyFrame, total: int, out_dir: Path) -> list[str]:
    scores = rows.select(pl.col("toxicity")).collect().to_series().drop_nulls().to_numpy().astype(np.float64)
    if not len(scores):
        return ["## Toxicity", "", "No row was scored.", ""]
    p50, p95 = np.percentile(scores, [50, 95])
    image = _histogram(scores, np.linspace(0, 1, 51), "Toxicity score of the published rows", "score",
                       out_dir / "toxicity.png", {f"median {p50:.2f}": p50, f"95% {p95:.2f}": p95})
    stats = _table(["scored", "mean", "median", "p95", "max"],
                   [(f"{len(scores) / total:.1%}" if total else "0%", f"{scores.mean():.3f}", f"{p50:.3f}",
                     f"{p95:.3f}", f"{scores.max():.3f}")])
    return ["## Toxicity", "", f"![toxicity]({image})", "", *stats, ""]


def _pii(rows: pl.LazyFrame, total: int) -> list[str]:
    counts = (rows.select(pl.col("pii_types").explode().alias("type")).drop_nulls().group_by("type").len()
              .sort(["len", "type"], descending=[True, False]).collect())
    if not counts.height:
        return ["## Personal data replaced", "", "None found.", ""]
    table = _table(["kind", "rows", "share"],
                   [(t, _count(n), f"{n / total:.1%}") for t, n in zip(counts["type"], counts["len"])])
    return ["## Personal data replaced", "", "Rows in which the pii stage replaced each kind with a placeholder.", "",
            *table, ""]


def _changes(previous: dict) -> list[str]:
    lines = [
        f"## Changes since version {previous['a']}",
        "",
        f"{_count(previous['rows_a'])} -> {_count(previous['rows_b'])} rows: {_count(previous['added'])} added, "
        f"{_count(previous['removed'])} removed (by id).",
    ]
    if previous.get("runs_added") or previous.get("runs_removed"):
        lines.append(f"Runs added: {', '.join(previous['runs_added']) or 'none'}; "
                     f"runs removed: {', '.join(previous['runs_removed']) or 'none'}.")
    if previous.get("languages"):
        ranked = sorted(previous["languages"].items(), key=lambda kv: (-abs(kv[1]["delta"]), kv[0]))
        rows = [(k, _count(v["a"]), _count(v["b"]), f"{v['delta']:+,}") for k, v in ranked[:TOP_LANGUAGES]]
        lines += ["", *_table(["language", f"v{previous['a']}", f"v{previous['b']}", "change"], rows)]
    return lines + [""]


def write_data_card(
    table: Path,
    version: int,
    report: dict,
    shards: Sequence[Path | str],
    previous: dict | None,
    out_dir: Path,
) -> Path:
    """Write DATACARD.md and its charts into `out_dir`; returns the markdown path.

    report: the run report of the version; shards: the version's Parquet files (transforms.versions.shard_uris);
    previous: transforms.versions.diff(table, version - 1, version), or None for a first version.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shards = [str(p) for p in shards]
    rows = pl.scan_parquet(shards) if shards else pl.scan_delta(str(table), version=version)  # empty: no files
    columns = set(rows.collect_schema().names())
    total = rows.select(pl.len()).collect().item()
    lines = [
        f"# Data card: {Path(table).name}, version {version}",
        "",
        *_table(["", ""], [
            ("rows", _count(total)),
            ("run", report.get("run_id", "")),
            ("stages", ", ".join(s["name"] for s in report.get("stages", [])) or "none"),
            ("config hash", report.get("config_hash", "")),
            ("code version", report.get("code_version", "")),
            ("models", "; ".join(f"{m['stage']}: {m['file']} (sha256 {m['sha256'][:12]})"
                                 for m in report.get("models", [])) or "none"),
            ("engine", report.get("engine", "")),
        ]),
        "",
        *_funnel(report, out_dir),
    ]
    if total:  # the sections describe rows; an empty version has none
        if "lang" in columns:
            lines += _languages(rows, total, out_dir)
        if "text" in columns:
            lines += _text_length(shards, out_dir)
        if "toxicity" in columns:
            lines += _toxicity(rows, total, out_dir)
        if "pii_types" in columns:
            lines += _pii(rows, total)
    if previous is not None:
        lines += _changes(previous)
    path = out_dir / CARD
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path
