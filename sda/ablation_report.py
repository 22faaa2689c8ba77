"""The ablation's report: the sweep's ``results.csv`` labelled by row, ``ablation.csv``, the
summary table (mean ± sd over seeds per row) and the figure ``ablation.png``, which may show a
second ablation (another budget: ``python -m sda.ablation --compare``) beside each row.  ``rows``
are the ablation's :class:`sda.ablation.Row` entries (name, anchor, factor, value)."""

from __future__ import annotations

import csv
import io
import math
import statistics
from pathlib import Path

from sda.sweep_config import VARIANT
from sda.utils import atomic_write

#: The published test errors (%) the figure marks: UFLDL's exercise (97.6 % accuracy) and the
#: Deep Learning Tutorials' SdA.
PUBLISHED_ERRORS = {"UFLDL's": 2.4, "the tutorial's": 1.30}
_COLUMNS = ["row", "anchor", "factor", "value", "seed", "validation_error", "test_error", "epochs", "seconds",
            "status", "message"]


def ablation_rows(results_csv: Path, rows: list) -> list[dict]:
    """One entry per trial of the sweep's ``results.csv``, labelled with its ablation row."""
    with open(results_csv, newline="", encoding="utf-8") as f:
        return _labelled(list(csv.DictReader(f)), rows)


def _labelled(trials: list[dict], rows: list) -> list[dict]:
    by_name = {row.name: row for row in rows}
    table = []
    for trial in trials:
        row = by_name[trial[VARIANT]]
        table.append({"row": row.name, "anchor": row.anchor, "factor": row.factor, "value": row.value,
                      "seed": int(trial["seed"]), "validation_error": _float(trial["best_validation_error"]),
                      "test_error": _float(trial["test_error"]), "epochs": trial["epochs"],
                      "seconds": _float(trial["seconds"]), "status": trial["status"], "message": trial["message"]})
    return table


def read_ablation_csv(path: Path) -> list[dict]:
    """The trials of an ``ablation.csv`` that :func:`write_ablation` wrote, numbers as numbers."""
    with open(path, newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    for trial in table:
        for key in ("validation_error", "test_error", "seconds"):
            trial[key] = _float(trial.get(key))
    return table


def _float(text: str | None):
    return float(text) if text not in ("", None) else None


def summary(table: list[dict], rows: list) -> list[dict]:
    """Per row, in the ablation's order: mean and sample sd of the validation and test errors
    (%) over its finished seeds, and their count."""
    entries = []
    for row in rows:
        trials = [t for t in table if t["row"] == row.name and t["status"] == "finished"]
        entry = {"row": row, "n": len(trials)}
        for key in ("validation_error", "test_error", "seconds"):
            values = [t[key] for t in trials if t[key] is not None]
            entry[key] = (statistics.fmean(values) if values else None,
                          statistics.stdev(values) if len(values) > 1 else None)
        entries.append(entry)
    return entries


def _percent(mean_sd) -> str:
    mean, sd = mean_sd
    if mean is None:
        return "—"
    return f"{100 * mean:.2f} %" if sd is None else f"{100 * mean:.2f} ± {100 * sd:.2f} %"


def summary_lines(entries: list[dict]) -> list[str]:
    """The table as printed: one line per row."""
    lines = [f"{'row':<30} {'factor → value':<42} {'validation':>16} {'test':>16} {'seeds':>5}"]
    for entry in entries:
        row = entry["row"]
        change = row.value if row.factor == "anchor" else f"{row.factor} → {row.value}"
        lines.append(f"{row.name:<30} {change:<42} {_percent(entry['validation_error']):>16} "
                     f"{_percent(entry['test_error']):>16} {entry['n']:>5}")
    return lines


def write_ablation(output_dir: Path, table: list[dict], rows: list, compare=None) -> list[str]:
    """``ablation.csv`` and ``ablation.png`` of ``table`` (:func:`ablation_rows`); returns the
    printed table.  ``compare``: ``(this table's label, the other's, the other table)`` (of
    :func:`read_ablation_csv`): the figure shows the other's result of each row beside this one's."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, _COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    atomic_write(output_dir / "ablation.csv", lambda f: f.write(buffer.getvalue().encode("utf-8")))
    entries = summary(table, rows)
    _plot(output_dir / "ablation.png", entries, None if compare is None else (
        compare[0], compare[1], summary(compare[2], rows)))
    return summary_lines(entries)


def bar_label(percent: float, n: int, seeds: int) -> str:
    """The figure's label of a row's mean test error over ``n`` finished seeds, saying so where
    that is fewer than ``seeds`` (the most any row has)."""
    return f"{percent:.2f} %" + (f" ({n} seed{'s' if n > 1 else ''} of {seeds})" if n < seeds else "")


def _plot(path: Path, entries: list[dict], other=None) -> None:
    """Test error (mean ± sd over seeds) of every row, the two anchors' groups apart; ``other``:
    ``(this budget's label, the other's, its entries)``, drawn as a grey bar under each row's."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return
    figure = Figure(figsize=(11, 0.42 * len(entries) + 1.6), layout="constrained")
    ax = figure.add_subplot()
    labels, means, sds, colours = [], [], [], []
    seeds = max(entry["n"] for entry in entries)  # a row with fewer finished seeds says so beside its bar
    for entry in entries:
        row = entry["row"]
        mean, sd = entry["test_error"]
        labels.append(f"{row.anchor}: " + ("anchor" if row.factor == "anchor" else f"{row.factor} → {row.value}"))
        means.append(100 * mean if mean is not None else 0.0)
        sds.append(100 * sd if sd is not None else float("nan"))  # one seed: no bar
        colours.append(("tab:orange" if row.anchor == "UFLDL" else "tab:blue") if row.factor != "anchor" else
                       ("darkorange" if row.anchor == "UFLDL" else "navy"))
    positions = list(range(len(entries)))[::-1]
    shift = 0.0 if other is None else 0.2  # two budgets: this one's bar above the other's
    ax.barh([p + shift for p in positions], means, height=0.8 - 2 * shift, xerr=sds, color=colours, capsize=3,
            label=None if other is None else other[0])
    widest = [m + (0.0 if math.isnan(s) else s) for m, s in zip(means, sds)]
    if other is not None:
        widest += _draw_other(ax, positions, other[2], other[1])
    ax.set_yticks(positions, labels)
    for row_position, mean, end, entry in zip(positions, means, widest, entries):
        position = row_position + shift
        if entry["test_error"][0] is not None:  # beyond the error bar
            ax.text(end, position, "  " + bar_label(mean, entry["n"], seeds), va="center", fontsize="small")
        else:  # an empty slot must not read as a zero error
            ax.text(0, position, "  no run finished", va="center", fontsize="small", color="gray")
    marks = []
    for (name, error), (style, word) in zip(PUBLISHED_ERRORS.items(), (("--", "dashed"), (":", "dotted"))):
        ax.axvline(error, color="gray", linestyle=style, linewidth=1)
        marks.append(f"{word}: {name} {error:.2f} %")
    ax.set_xlim(0, 1.18 * max(widest + list(PUBLISHED_ERRORS.values())))  # room for the labels
    ax.set_xlabel("test error (%) of the kept model (best validation, or the last iterate),\n"
                  "mean ± sd over seeds; " + "; ".join(marks))
    ax.set_title("From each anchor, one factor changed at a time")
    if other is not None:
        ax.legend(loc="lower right", fontsize="small")
    ax.grid(True, axis="x", alpha=0.3)
    buffer = io.BytesIO()  # one write: a reader never sees half a picture
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def _draw_other(ax, positions, entries: list[dict], label: str) -> list[float]:
    """The other budget's bar (mean ± sd) under each row; returns their right ends, for the axis's width."""
    means = [100 * e["test_error"][0] if e["test_error"][0] is not None else 0.0 for e in entries]
    sds = [100 * e["test_error"][1] if e["test_error"][1] is not None else float("nan") for e in entries]
    ax.barh([p - 0.2 for p in positions], means, height=0.4, xerr=sds, color="lightgray", edgecolor="gray",
            capsize=2, label=label)
    for position, mean, entry in zip(positions, means, entries):
        text = f"  {mean:.2f} %" if entry["test_error"][0] is not None else "  not run at this budget"
        ax.text(mean, position - 0.2, text, va="center", fontsize="x-small", color="dimgray")
    return [m + (0.0 if math.isnan(s) else s) for m, s in zip(means, sds)]
