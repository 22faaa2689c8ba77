"""Time to accuracy: the best validation error so far, and the test error of the model chosen by
it, against wall-clock seconds, for run folders of ``python -m sda.SdA`` (their
``metrics.jsonl`` and ``results.json``).

    python bench/time_to_accuracy.py fast=runs/fast-1,runs/fast-2 best=runs/best-1 \\
        --output docs/time_to_accuracy.png

Each argument is ``LABEL=DIR[,DIR...]``: the runs of one protocol (seeds), drawn in one colour.
A run's clock starts when it starts compiling: PyTensor's compile seconds, then each epoch's
seconds (which hold the first calls' compiling of NUMBA and JAX), pretraining included.  The test
error is the one of the model the validation error chose at that moment (it never chooses
anything itself).  Prints, for each run, the seconds until its chosen model's test error first
reached ``--target`` (1.30 % by default), or that it never did, and its error at ``--budget``
seconds (600 by default).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FormatStrFormatter, LogLocator, ScalarFormatter

from sda.utils import read_json, read_json_lines


def curve(run_dir: Path) -> dict[str, list[float]]:
    """``{"seconds": ..., "validation": ..., "test": ...}`` of a run folder: at the end of each
    fine-tuning epoch that was validated, the seconds since the run started compiling, the best
    validation error so far and the test error of the model it chose (None without a test set)."""
    clock = float(read_json(run_dir / "results.json").get("pytensor_compile_seconds", 0.0))
    seconds, validation, test = [], [], []
    best, chosen_test = math.inf, None
    for record in read_json_lines(run_dir / "metrics.jsonl"):
        clock += float(record["seconds"])
        if record["phase"] != "fine-tuning" or record.get("validation_error") is None:
            continue
        best = min(best, record["validation_error"])
        # a run records a test error exactly when the model it keeps changes
        chosen_test = chosen_test if record.get("test_error") is None else record["test_error"]
        seconds.append(clock)
        validation.append(best)
        test.append(chosen_test)
    return {"seconds": seconds, "validation": validation, "test": test}


def first_time_below(points: dict, target: float) -> float | None:
    """The first second at which the chosen model's test error is at most ``target``."""
    return next((s for s, t in zip(points["seconds"], points["test"]) if t is not None and t <= target), None)


def error_at(points: dict, budget: float) -> float | None:
    """The chosen model's test error at ``budget`` seconds (None before the first validation)."""
    errors = [t for s, t in zip(points["seconds"], points["test"]) if s <= budget]
    return errors[-1] if errors else None


def draw(groups: dict[str, list[tuple[str, dict]]], path: Path, target: float) -> None:
    figure, axis = plt.subplots(figsize=(8, 5), constrained_layout=True)
    for colour, (label, runs) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], groups.items()):
        for i, (_, points) in enumerate(runs):
            tests = [math.nan if t is None else 100 * t for t in points["test"]]
            axis.step(points["seconds"], [100 * v for v in points["validation"]], where="post", color=colour,
                      lw=1.2, marker="o", ms=3, label=f"{label}: best validation error" if i == 0 else None)
            axis.step(points["seconds"], tests, where="post", color=colour, lw=1.2, ls="--", marker="x", ms=4,
                      label=f"{label}: test error of the model it chose" if i == 0 else None)
    axis.axhline(100 * target, color="grey", lw=0.8, ls=":")
    axis.set(xscale="log", yscale="log", xlabel="seconds since the run started compiling",
             ylabel="error (%)", title=f"Time to accuracy (one line per seed; dotted: {100 * target:g} %)")
    for ticks in (axis.xaxis, axis.yaxis):  # plain numbers, not powers of ten, on both log axes
        ticks.set_major_formatter(ScalarFormatter())
        ticks.set_minor_locator(LogLocator(subs=(2, 3, 5)))  # labels that never run into each other
        ticks.set_minor_formatter(FormatStrFormatter("%g"))
    axis.legend(fontsize=8)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=DIR[,DIR...]")
    parser.add_argument("--output", type=Path, default=Path("time_to_accuracy.png"))
    parser.add_argument("--target", type=float, default=0.013, help="test error to reach (default 0.013)")
    parser.add_argument("--budget", type=float, default=600.0, help="seconds to report the error at")
    args = parser.parse_args(argv)
    groups: dict[str, list[tuple[str, dict]]] = {}
    for argument in args.runs:
        label, sep, folders = argument.partition("=")
        if not sep or not folders:
            parser.error(f"{argument!r}: expected LABEL=DIR[,DIR...]")
        try:
            groups[label] = [(folder, curve(Path(folder))) for folder in folders.split(",")]
        except (OSError, ValueError, KeyError) as exc:
            parser.error(f"{label}: not a finished run folder ({exc})")
    for label, runs in groups.items():
        for folder, points in runs:
            reached, at_budget = first_time_below(points, args.target), error_at(points, args.budget)
            print(f"{label} {folder}: test error {100 * args.target:.2f} % "
                  + (f"after {reached:.0f} s" if reached is not None else "never reached")
                  + (f"; {100 * at_budget:.2f} % at {args.budget:.0f} s" if at_budget is not None else ""))
    draw(groups, args.output, args.target)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
