"""What a sweep leaves behind: one row per trial, a summary per configuration, a picture.

* ``results.csv``: one row per trial: its configuration number, seed, every hyperparameter,
  the best validation error, the test error at that point, epochs, seconds, status
  (finished, stopped early by the scheduler, failed, unfinished), a one-line message and the
  command line that reruns it;
* ``summary.csv``: per configuration, mean and sample standard deviation over its seeds of
  the validation and test errors of its finished trials, and ``over``, what they are the mean
  of ("mean over 4 finished trials; 2 stopped early by ASHA").  A trial the scheduler stopped
  early is counted, not averaged: its error is of fewer epochs than the others', and averaging
  it in would mix two kinds of number; a failed trial counts in ``failed`` only;
* ``results.png``: the validation error of every trial against each swept hyperparameter, or,
  when only the seed varies, the validation and test errors of the seeds as points beside their
  mean ± sd (a line through errors against seed numbers would draw a trend that is not there).

Errors are fractions in the CSV files (0.0123 = 1.23 %), as in ``results.json``; the picture
and the printed lines show percentages.  No Ray here: :mod:`sda.sweep` builds the rows.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from pathlib import Path

from sda.run import TUTORIAL
from sda.sweep_config import Sweep
from sda.utils import atomic_write

__all__ = ["STATUSES", "write_results", "summarise", "best_configuration", "best_line", "plot_results"]

#: A trial's status in ``results.csv``.
STATUSES = ("finished", "stopped", "failed", "unfinished")
_MEASURED = ("finished", "stopped")  # ran a fine-tuning epoch at least: drawn, but only finished ones are averaged
_OUTCOME_COLUMNS = ["best_validation_error", "test_error", "epochs", "seconds", "status", "message", "command"]


def _cell(value) -> str:
    """A CSV cell: lists as space-separated values (as on the command line), None empty."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(_cell(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: _cell(row.get(column)) for column in columns})
    data = buffer.getvalue().encode()
    return atomic_write(path, lambda f: f.write(data))


def _hyperparameter_columns(sweep: Sweep) -> list[str]:
    """The swept keys first, then every other key of a run's configuration."""
    return sweep.axes + [key for key in TUTORIAL if key not in sweep.axes and key != "seed"]


def write_results(path, sweep: Sweep, rows: list[dict]) -> Path:
    """``results.csv``: one row per trial (see the module docstring)."""
    columns = ["trial", "configuration", "seed", *_hyperparameter_columns(sweep), *_OUTCOME_COLUMNS]
    return _write_csv(Path(path), columns, rows)


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def _percent(mean: float | None, sd: float | None) -> str:
    if mean is None:
        return ""
    return f"{mean:.2%}" if sd is None else f"{100 * mean:.2f} ± {100 * sd:.2f} %"


def averaged_over(finished: int, stopped: int) -> str:
    """What a configuration's means are of: "mean over 4 finished trials; 2 stopped early by ASHA"."""
    text = f"mean over {finished} finished trial{'s' if finished != 1 else ''}" if finished else "no finished trial"
    return text + (f"; {stopped} stopped early by ASHA" if stopped else "")


def summarise(sweep: Sweep, rows: list[dict]) -> list[dict]:
    """Per configuration: its swept values, the count of trials in each status, and mean and
    sample standard deviation of the validation and test errors over its finished seeds."""
    summary = []
    for number, configuration in enumerate(sweep.configurations):
        trials = [row for row in rows if row["configuration"] == number]
        finished = [row for row in trials if row["status"] == "finished"]
        entry = {"configuration": number, **configuration, "trials": len(trials)}
        entry.update({status: sum(row["status"] == status for row in trials) for status in STATUSES})
        entry["over"] = averaged_over(entry["finished"], entry["stopped"])
        for error in ("best_validation_error", "test_error"):
            name = "validation_error" if error == "best_validation_error" else error
            values = [row[error] for row in finished if row[error] is not None]
            mean, sd = _mean_sd(values)
            entry.update({f"{name}_mean": mean, f"{name}_sd": sd, name: _percent(mean, sd)})
        summary.append(entry)
    return summary


def write_summary(path, sweep: Sweep, summary: list[dict]) -> Path:
    """``summary.csv``: one row per configuration (:func:`summarise`)."""
    columns = ["configuration", *sweep.axes, "trials", *STATUSES, "over", "validation_error", "test_error",
               "validation_error_mean", "validation_error_sd", "test_error_mean", "test_error_sd"]
    return _write_csv(Path(path), columns, summary)


def best_configuration(summary: list[dict]) -> dict | None:
    """The configuration of lowest mean validation error (None when no trial was measured)."""
    measured = [entry for entry in summary if entry["validation_error_mean"] is not None]
    return min(measured, key=lambda entry: entry["validation_error_mean"], default=None)


def best_line(sweep: Sweep, summary: list[dict], rows: list[dict]) -> str:
    """One line: the best configuration (or, when only the seed varies, the one), its errors over
    its finished seeds and how many were stopped early, and the command that reruns its best seed."""
    best = best_configuration(summary)
    if best is None:
        return "no trial ran to its end: no best configuration"
    # the best seed that ran to its end: its command reproduces it (a stopped one would run longer)
    trial = min((row for row in rows if row["configuration"] == best["configuration"] and row["status"] == "finished"),
                key=lambda row: row["best_validation_error"])
    errors = f"validation error {best['validation_error']}" + (f", test error {best['test_error']}"
                                                               if best["test_error"] else "")
    rerun = f"rerun (seed {trial['seed']}): {trial['command']}"
    if not sweep.axes:
        over = best["over"].replace("mean over", "mean ± sd over", 1) if best["validation_error_sd"] else best["over"]
        return f"over the seeds: {errors} ({over}); {rerun}"
    values = ", ".join(f"{axis}={_cell(best[axis])}" for axis in sweep.axes)
    return f"best configuration {best['configuration']} ({values}): {errors} ({best['over']}); {rerun}"


def _numeric(values: list) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _log_scale(sweep: Sweep, axis: str, values: list) -> bool:
    """Log axes for log-uniform draws and for positive values spanning 20× or more."""
    if axis in sweep.random_axes:
        return sweep.random_axes[axis][0] == "loguniform"
    return _numeric(values) and min(values) > 0 and max(values) >= 20 * min(values)


def plot_results(path, sweep: Sweep, rows: list[dict]) -> Path | None:
    """``results.png``: validation error (%) against each swept hyperparameter, one panel each,
    or the seeds' errors when nothing else varies (:func:`_seeds_panel`).  None when matplotlib
    is not installed."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    measured = [row for row in rows if row["status"] in _MEASURED and row["best_validation_error"] is not None]
    failed = sum(row["status"] == "failed" for row in rows)
    if not sweep.axes:
        figure = Figure(figsize=(5.5, 4.4), layout="constrained")
        _seeds_panel(figure.add_subplot(1, 1, 1), measured)
        title = f"{len(measured)} seeds of one configuration"
    else:
        n_cols = min(3, len(sweep.axes))
        n_rows = math.ceil(len(sweep.axes) / n_cols)
        figure = Figure(figsize=(4.5 * n_cols, 3.6 * n_rows + 0.6), layout="constrained")
        for index, axis in enumerate(sweep.axes):
            _panel(figure.add_subplot(n_rows, n_cols, index + 1), sweep, axis, measured)
        title = f"sweep: best validation error of {len(measured)} trials"
    figure.suptitle(title + (f"\n({failed} failed, not shown)" if failed else ""))  # one panel is narrow
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return atomic_write(path, lambda f: f.write(buffer.getvalue()))


def _seeds_panel(ax, rows: list[dict]) -> None:
    """The seeds of one configuration: each one's validation and test error as a point (hollow:
    stopped early), spread sideways so that equal errors stay apart, and the mean ± sd of the
    finished ones as a bar beside them.  The seed is no axis: its number says nothing of the error."""
    columns = [("validation", "best_validation_error")]
    if any(row["test_error"] is not None for row in rows):
        columns.append(("test", "test_error"))
    for x, (_, key) in enumerate(columns):
        points = [(100 * row[key], row["status"] == "stopped") for row in rows if row[key] is not None]
        offsets = [0.0] if len(points) == 1 else [-0.15 + 0.3 * i / (len(points) - 1) for i in range(len(points))]
        for (error, stopped), offset in zip(points, offsets):
            ax.scatter(x - 0.1 + offset, error, zorder=3, **({"facecolors": "none", "edgecolors": "tab:orange"}
                                                             if stopped else {"color": "tab:blue"}))
        mean, sd = _mean_sd([error for error, stopped in points if not stopped])
        if mean is not None:
            ax.errorbar(x + 0.25, mean, yerr=sd or 0, fmt="D", color="black", capsize=6, zorder=4)
            ax.annotate(_percent(mean / 100, None if sd is None else sd / 100), (x + 0.3, mean),
                        textcoords="offset points", xytext=(6, 0), va="center", fontsize="small")
    ax.scatter([], [], color="tab:blue", label="a seed")
    if any(row["status"] == "stopped" for row in rows):
        ax.scatter([], [], facecolors="none", edgecolors="tab:orange", label="stopped early (not averaged)")
    ax.errorbar([], [], yerr=[], fmt="D", color="black", capsize=6, label="mean ± sd of the finished")
    ax.set_xticks(range(len(columns)), [f"{label} error" for label, _ in columns])
    ax.set_xlim(-0.6, len(columns) - 0.1)
    ax.set_ylabel("error (%)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize="small")


def _panel(ax, sweep: Sweep, axis: str, rows: list[dict]) -> None:
    """One hyperparameter: every trial as a point (hollow: stopped early), and for a grid axis
    the mean per value of the finished trials as a line, with a tick at each value."""
    values = [row[axis] for row in rows]
    errors = [100 * row["best_validation_error"] for row in rows]
    numeric = _numeric(values)
    if numeric:
        positions = values
    else:  # lists (layer sizes) and the like: one category per distinct value, in order of appearance
        labels = list(dict.fromkeys(_cell(v) for v in values))
        positions = [labels.index(_cell(v)) for v in values]
        ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 4 else 0)
    stopped = [row["status"] == "stopped" for row in rows]
    ax.scatter([p for p, s in zip(positions, stopped) if not s], [e for e, s in zip(errors, stopped) if not s],
               color="tab:blue", label="finished", zorder=3)
    if any(stopped):
        ax.scatter([p for p, s in zip(positions, stopped) if s], [e for e, s in zip(errors, stopped) if s],
                   facecolors="none", edgecolors="tab:orange", label="stopped early", zorder=3)
    finished = [(p, e) for p, e, s in zip(positions, errors, stopped) if not s]
    if axis not in sweep.random_axes and finished:
        means = {p: statistics.fmean(e for q, e in finished if q == p) for p in sorted({p for p, _ in finished})}
        ax.plot(list(means), list(means.values()), color="tab:gray", linewidth=1, label="mean of the finished")
        if numeric:
            ax.set_xticks(list(means), [_cell(p) for p in means])
    if numeric and values and _log_scale(sweep, axis, values):
        ax.set_xscale("log")
    ax.set_title(f"validation error against {axis}")
    ax.set_xlabel(axis)
    ax.set_ylabel("best validation error (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
