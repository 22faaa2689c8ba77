"""bench/time_to_accuracy.py: the curves it draws are read correctly from a run's files."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
from time_to_accuracy import curve, error_at, first_time_below, main


def write_run(folder: Path) -> Path:
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"pytensor_compile_seconds": 5.0}))
    records = [
        {"phase": "pretraining", "layer": 0, "epoch": 1, "cost": 9.0, "seconds": 10.0},
        {"phase": "fine-tuning", "epoch": 1, "validation_error": 0.05, "test_error": 0.06, "seconds": 2.0},
        {"phase": "fine-tuning", "epoch": 2, "validation_error": 0.07, "test_error": None, "seconds": 2.0},
        {"phase": "fine-tuning", "epoch": 3, "validation_error": None, "test_error": None, "seconds": 2.0},
        {"phase": "fine-tuning", "epoch": 4, "validation_error": 0.02, "test_error": 0.012, "seconds": 2.0},
    ]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_the_curve_is_the_best_validation_error_so_far_and_the_test_error_it_chose(tmp_path):
    points = curve(write_run(tmp_path / "run"))
    # compiling, then pretraining, count on the clock; an epoch not validated is no point
    assert points == {"seconds": [17.0, 19.0, 23.0], "validation": [0.05, 0.05, 0.02], "test": [0.06, 0.06, 0.012]}
    assert first_time_below(points, 0.013) == 23.0 and first_time_below(points, 0.01) is None
    assert error_at(points, 20.0) == 0.06 and error_at(points, 10.0) is None


def test_the_script_reports_each_run_and_writes_the_figure(tmp_path, capsys):
    run = write_run(tmp_path / "run")
    assert main([f"fast={run}", "--output", str(tmp_path / "t.png"), "--budget", "20"]) == 0
    printed = capsys.readouterr().out
    assert f"fast {run}: test error 1.30 % after 23 s; 6.00 % at 20 s" in printed
    assert (tmp_path / "t.png").stat().st_size > 10_000
