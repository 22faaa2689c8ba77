"""Sweeps on a file of one's own (``[data] data = "mine.npz"``), as ``--data`` trains on it.

One tiny sweep (two seeds, a hidden layer of 8, two fine-tuning epochs) runs end to end on
Ray; the refused files never reach it.
"""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray.tune")

from conftest import synthetic_digits
from support import CPU_MODE
from sda.cli import build_parser
from sda.sweep_config import SweepConfigError, parse_sweep, rerun_command

REPO = Path(__file__).resolve().parents[1]


def sweep_text(data: str, extra: str = "") -> str:
    return f"""
preset = "quick"
seeds = 2

[config]
hidden_layer_sizes = [8]
corruption_levels = [0.1]
pretraining_epochs = 1
pretrain_batch_size = 10
finetune_batch_size = 10
training_epochs = 2

[data]
data = "{data}"
{extra}

[run]
mode = "{CPU_MODE}"
"""


def run_sweep(*args, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "sda.sweep", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=env)


@pytest.fixture
def sweep_folder(tmp_path):
    """A folder holding ``mine.npz`` (120 synthetic 8x8 digits of 3 classes) and, elsewhere, the
    folder the sweep is started from."""
    folder = tmp_path / "study"
    folder.mkdir()
    images, labels = synthetic_digits(120, n_classes=3, seed=1)
    np.savez(folder / "mine.npz", X=images.reshape(len(images), -1), y=labels)
    (tmp_path / "elsewhere").mkdir()
    return folder


def test_a_sweep_on_an_npz_file_trains_every_trial_as_the_command_line_does(sweep_folder):
    config = sweep_folder / "sweep.toml"
    config.write_text(sweep_text("mine.npz"))  # relative: next to the sweep file, not the current directory
    out = sweep_folder / "out"
    process = run_sweep("--config", config, "--output-dir", out, "--max-concurrent", 1,
                        cwd=sweep_folder.parent / "elsewhere")
    assert process.returncode == 0, process.stdout + process.stderr
    data_file = str((sweep_folder / "mine.npz").resolve())
    assert f"data {data_file}" in process.stdout
    recorded = json.loads((out / "data.json").read_text())
    assert recorded["data"]["data_file"] == data_file
    results = [json.loads(path.read_text()) for path in sorted((out / "trials").glob("*/results.json"))]
    assert len(results) == 2
    for run in results:  # recorded as the command line records --data mine.npz
        assert run["data"]["data_file"] == data_file and run["data"]["shuffle"] is True
        assert run["data"]["valid_size"] == 20 and "scaled" in run["data"]  # a sixth of 120 rows
        assert run["config"]["n_outs"] == 3  # the classes of the labels, as --n-outs defaults to
    assert {run["config"]["seed"] for run in results} == {89677, 89678}
    best = next(line for line in process.stdout.splitlines() if line.startswith("over the seeds: "))
    assert "(mean ± sd over 2 finished trials)" in best
    command = shlex.split(best.split("): ", 1)[1])
    assert command[command.index("--data") + 1] == data_file
    assert (out / "results.png").is_file()


@pytest.mark.parametrize("name, message", [
    ("missing.npz", "does not exist"),
    ("missing.csv", "does not exist"),
])
def test_a_bad_data_path_is_one_line_before_ray(name, message, sweep_folder):
    config = sweep_folder / "sweep.toml"
    config.write_text(sweep_text(name))
    process = run_sweep("--config", config, "--output-dir", sweep_folder / "out", cwd=sweep_folder)
    assert process.returncode == 2
    assert process.stderr.count("\n") == 1 and process.stderr.startswith("sda-sweep: error: ")
    assert str(sweep_folder / name) in process.stderr and message in process.stderr
    assert not (sweep_folder / "out").exists()


def test_data_keys_are_those_of_the_command_line(tmp_path):
    sweep = parse_sweep(sweep_text("mine.csv", 'label_column = "label"\nshuffle = false\nvalid_size = 7'),
                        folder=tmp_path)
    assert sweep.data["data_file"] == str(tmp_path / "mine.csv")
    args = build_parser().parse_args(shlex.split(rerun_command(sweep, sweep.trial_config({}, 1)))[3:])
    assert (args.data, args.label_column, args.shuffle, args.valid_size) == (tmp_path / "mine.csv", "label", False, 7)
    with pytest.raises(SweepConfigError, match="data.shuffle goes with data.data = FILE"):
        parse_sweep("[data]\nshuffle = false")
    with pytest.raises(SweepConfigError, match="not both"):
        parse_sweep('[data]\ndata = "a.npz"\ndata_dir = "b"')
