"""Sweeps on Ray Tune (``python -m sda.sweep``) on tiny synthetic digits.

Ray's start costs about 10 s, so one sweep (ASHA, a diverging configuration, two seeds) is run
once for the module and shared by the tests that read its outputs; the interrupted sweep and
its resume are a second one.  Bad configuration files never reach Ray.
"""

import csv
import gzip
import hashlib
import json
import re
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray.tune")

from conftest import write_tiny_mnist
from support import CPU_MODE
from sda.checkpoint import CheckpointError, load_checkpoint
from sda.cli import build_parser, config_from_args
from sda.cli import main as sda_main
from sda.data import MNIST_SHA256
from sda.resources import shipped, shipped_sweeps, sweep_path
from sda.run import validate_config
from sda.sweep import _check_arguments
from sda.sweep import build_parser as sweep_parser
from sda.sweep import main as sweep_main
from sda.sweep_config import SweepConfigError, parse_sweep, read_sweep, rerun_command
from sda.sweep_report import best_line, plot_results, summarise

TRAINING_EPOCHS = 15


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """The four MNIST files of 300 training and 100 test 8x8 synthetic digits."""
    return write_tiny_mnist(tmp_path_factory.mktemp("tiny_mnist"))


def sweep_file(path, data_dir, search: str, extra: str = "", layers=(12, 8), training_epochs=TRAINING_EPOCHS,
               finetune_batch_size=10, config: str = ""):
    """A small sweep: tiny layers, the data of ``data_dir``, mode CPU_MODE."""
    path.write_text(f"""
preset = "quick"
{extra}

[config]
hidden_layer_sizes = {list(layers)}
corruption_levels = {[0.1, 0.2][:len(layers)]}
pretraining_epochs = 2
pretrain_lr = 0.05
pretrain_batch_size = 10
finetune_batch_size = {finetune_batch_size}
training_epochs = {training_epochs}
{config}

[data]
data_dir = "{data_dir}"
valid_size = 50
verify = false

[run]
mode = "{CPU_MODE}"

[search]
{search}
""")
    return path


def run_sweep(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "sda.sweep", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def finished_sweep(data_dir, tmp_path_factory):
    """Three learning rates (good, too small to learn in two epochs, diverging) × 2 seeds, one
    trial at a time, with ASHA: the trials of the tiny rate lag far behind at the first rung
    (epoch 2: about 30 % against 66 % and more), and are stopped there."""
    tmp = tmp_path_factory.mktemp("sweep")
    config = sweep_file(tmp / "sweep.toml", data_dir, "finetune_lr = [0.1, 1e-4, 1e9]", finetune_batch_size=1,
                        extra='seeds = 2\n[scheduler]\ntype = "asha"\ngrace_period = 2\nreduction_factor = 2')
    out = tmp / "out"
    process = run_sweep("--config", config, "--output-dir", out, "--max-concurrent", 1)
    assert process.returncode == 0, process.stdout + process.stderr
    return out, process.stdout, read_csv(out / "results.csv")


def test_sweep_writes_results_summary_and_picture(finished_sweep):
    out, stdout, rows = finished_sweep
    assert len(rows) == 6
    assert {(row["finetune_lr"], row["seed"]) for row in rows} == {
        (lr, seed) for lr in ("0.1", "0.0001", "1000000000.0") for seed in ("89677", "89678")}
    summary = read_csv(out / "summary.csv")
    assert [row["configuration"] for row in summary] == ["0", "1", "2"]
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finished = [row for row in rows if row["status"] == "finished"]
    assert finished
    for row in finished:  # each trial's own sda folder, and its numbers in the table
        trial = out / "trials" / row["trial"]
        assert (trial / "checkpoint.safetensors").is_file() and (trial / "best_model.safetensors").is_file()
        results = json.loads((trial / "results.json").read_text())
        assert float(row["best_validation_error"]) == results["finetuning"]["best_validation_error"]
        assert float(row["test_error"]) == results["finetuning"]["test_error"]
        assert int(row["epochs"]) == results["finetuning"]["epochs"]
        assert results["config"]["finetune_lr"] == float(row["finetune_lr"])
        assert results["config"]["seed"] == int(row["seed"])
        assert results["mode"] == CPU_MODE
    assert f"{len(finished)} finished" in stdout


def test_summary_is_the_mean_and_sd_over_seeds(finished_sweep):
    out, _, rows = finished_sweep
    good = [float(row["best_validation_error"]) for row in rows if row["configuration"] == "0"]
    assert [row["status"] for row in rows if row["configuration"] == "0"] == ["finished", "finished"]
    summary = read_csv(out / "summary.csv")[0]
    assert int(summary["trials"]) == 2 and summary["over"] == "mean over 2 finished trials"
    assert float(summary["validation_error_mean"]) == pytest.approx(sum(good) / 2)
    assert float(summary["validation_error_sd"]) == pytest.approx(abs(good[0] - good[1]) / 2 ** 0.5)
    stopped = read_csv(out / "summary.csv")[1]  # the tiny rate's trials, stopped by ASHA, are counted apart
    assert f"{stopped['stopped']} stopped early by ASHA" in stopped["over"]


def test_diverging_trials_fail_while_the_others_go_on(finished_sweep):
    out, stdout, rows = finished_sweep
    diverged = [row for row in rows if row["finetune_lr"] == "1000000000.0"]
    assert [row["status"] for row in diverged] == ["failed", "failed"]
    for row in diverged:
        assert row["message"].startswith("training diverged: fine-tuning, epoch 1")
        assert "\n" not in row["message"]
        assert json.loads((out / "trials" / row["trial"] / "failure.json").read_text())["message"] == row["message"]
        assert f"trial {row['trial']} " in stdout and "failed: training diverged" in stdout
    assert all(row["status"] in ("finished", "stopped") for row in rows if row not in diverged)
    failed = read_csv(out / "summary.csv")[2]
    assert (failed["failed"], failed["validation_error_mean"]) == ("2", "")


def test_asha_stops_trials_that_lag(finished_sweep):
    out, _, rows = finished_sweep
    stopped = [row for row in rows if row["status"] == "stopped"]
    assert stopped, "the trial of learning rate 1e-4 should be stopped at its first rung"
    assert any(row["finetune_lr"] == "0.0001" for row in stopped)
    for row in stopped:
        assert int(row["epochs"]) < TRAINING_EPOCHS
        assert row["message"] == f"stopped by the scheduler after epoch {row['epochs']}"
        assert not (out / "trials" / row["trial"] / "results.json").exists()


def test_printed_best_command_reruns_the_same_run(finished_sweep, tmp_path):
    out, stdout, rows = finished_sweep
    best_line = next(line for line in stdout.splitlines() if line.startswith("best configuration"))
    summary = read_csv(out / "summary.csv")
    best = min((row for row in summary if row["validation_error_mean"]),
               key=lambda row: float(row["validation_error_mean"]))
    assert best_line.startswith(f"best configuration {best['configuration']} (finetune_lr={best['finetune_lr']})")
    seed, command = best_line.split("rerun (seed ")[1].split("): ", 1)
    command = shlex.split(command)
    assert command[:3] == ["python", "-m", "sda.SdA"] and "--mode" in command and CPU_MODE in command
    trial = next(row for row in rows if row["configuration"] == best["configuration"] and row["seed"] == seed)
    assert trial["status"] == "finished"

    assert sda_main(command[3:] + ["--output-dir", str(tmp_path / "rerun"), "--quiet", "--no-pictures"]) == 0
    rerun = json.loads((tmp_path / "rerun" / "results.json").read_text())
    original = json.loads((out / "trials" / trial["trial"] / "results.json").read_text())
    assert rerun["config"] == original["config"]
    for key in ("best_validation_error", "test_error", "epochs"):
        assert rerun["finetuning"][key] == original["finetuning"][key]
    assert ([r["validation_error"] for r in rerun["finetuning"]["history"]]
            == [r["validation_error"] for r in original["finetuning"]["history"]])


# ---------------------------------------------------------------- interrupt and resume


def _fine_tuning_epochs(folder):
    try:
        checkpoint = load_checkpoint(folder / "checkpoint.safetensors")
    except (CheckpointError, OSError):
        return 0
    return 0 if checkpoint.fit is None else checkpoint.fit.epoch


def _snapshot(trials):
    return {path.parent.name: (path.stat().st_mtime_ns, path.read_bytes()) for path in trials.glob("*/results.json")}


def test_interrupted_sweep_resumes_without_rerunning_finished_trials(data_dir, tmp_path):
    """SIGINT once a trial has finished and the next is fine-tuning; ``--resume`` keeps the
    finished ones as they are and continues the interrupted one from its sda checkpoint."""
    config = sweep_file(tmp_path / "sweep.toml", data_dir, "finetune_lr = [0.1]", extra="seeds = 2",
                        layers=(200, 200), training_epochs=60, config="patience_epochs = 1000")
    out, trials = tmp_path / "out", tmp_path / "out" / "trials"
    process = subprocess.Popen([sys.executable, "-m", "sda.sweep", "--config", str(config),
                                "--output-dir", str(out), "--max-concurrent", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline, running = time.monotonic() + 150, None
    while time.monotonic() < deadline and process.poll() is None:
        finished = {p.parent.name for p in trials.glob("*/results.json")}
        running = next((p.parent for p in trials.glob("*/checkpoint.safetensors")
                        if p.parent.name not in finished and _fine_tuning_epochs(p.parent) >= 2), None)
        if finished and running is not None:
            break
        time.sleep(0.1)
    assert running is not None and process.poll() is None, "no trial caught while fine-tuning"
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert f"python -m sda.sweep --output-dir {out} --resume" in output
    before = _snapshot(trials)
    assert len(before) == 1 and running.name not in before
    interrupted = load_checkpoint(running / "checkpoint.safetensors")

    resumed = run_sweep("--output-dir", out, "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    rows = read_csv(out / "results.csv")
    assert len(rows) == 2 and {row["status"] for row in rows} == {"finished"}
    after = _snapshot(trials)
    assert {name: after[name] for name in before} == before  # finished trials untouched
    results = json.loads((running / "results.json").read_text())
    # continued, not restarted: the pretraining and the first epochs are those of the checkpoint
    assert results["pretraining"]["seconds_per_layer"] == interrupted.pretrain.seconds
    assert results["finetuning"]["history"][:interrupted.fit.epoch] == interrupted.fit.history


# ---------------------------------------------------------------- refusals, before Ray starts


@pytest.mark.parametrize("text, message", [
    ("[config]\nfinetune_lr = 0.1\n[serch]\nx = [1]", "unknown keys in the file's top level: serch"),
    ("[search]\nfinetune_rate = [0.1]", "unknown keys in [search]: finetune_rate"),
    ("[search]\nfinetune_lr = [0.1, -1.0]", "finetune_lr must be a finite number > 0, got -1.0"),
    ("[search]\nfinetune_lr = {loguniform = [0, 1]}", "loguniform needs low > 0"),
    ("[search]\nfinetune_lr = {uniform = [0.3, 0.1]}", "uniform needs [low, high] with finite low < high"),
    ("[search]\nfinetune_lr = 0.1", "search.finetune_lr must be a list of values (a grid)"),
    ("[search]\ndepth = [0, 1]", "depth must be an integer >= 1, got 0"),
    ("[search]\ncorruption_level = [0.5, 1.0]", "corruption_levels must be in [0, 1), got 1.0"),
    ("seeds = 0", "seeds must be an integer >= 1"),
    ("[search]\nseed = [1, 2]", "sweep seeds with seeds = N"),
    ('preset = "slow"', "preset must be one of"),
    ("[config]\nunits = 10\n[search]\nhidden_layer_sizes = [[5]]", "give either units or hidden_layer_sizes"),
    ("[search]\nfinetune_lr = [0.1\n", "is not valid TOML"),
    ("[scheduler]\ntype = \"hyperband\"", 'scheduler.type must be "asha"'),
    ("[data]\ndata_dir = \"/nonexistent/mnist\"", "data directory /nonexistent/mnist does not exist"),
    ("[data]\ntrain_size = 100000\nvalid_size = 50\nverify = false", "data.train_size is 100000, more than the 250"),
])
def test_bad_configuration_exits_2_with_one_line(text, message, data_dir, tmp_path, capsys):
    if "[data]" in text:
        text = text.replace("verify = false", f'verify = false\ndata_dir = "{data_dir}"')
    else:
        text += f'\n[data]\ndata_dir = "{data_dir}"\nverify = false\nvalid_size = 50\n'
    config = tmp_path / "bad.toml"
    config.write_text(text)
    assert sweep_main(["--config", str(config), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("sda-sweep: error: ")
    assert message in err
    assert not (tmp_path / "out").exists()  # a refused sweep leaves no folder claimed


@pytest.mark.parametrize("text, trials", [
    ("seeds = 1000000000", "1,000,000,000"),
    ("num_samples = 1000000000\n[search]\nfinetune_lr = {loguniform = [0.001, 1.0]}", "1,000,000,000"),
    ("[search]\n" + "\n".join(f"{key} = {list(range(1, 41))}" for key in
                               ("training_epochs", "pretraining_epochs", "pretrain_batch_size", "finetune_batch_size",
                                "patience_epochs", "seed")[:5]) + "\nfinetune_lr = " + str([0.1] * 40),
     f"{40 ** 6:,}"),
])
def test_a_file_asking_for_too_many_trials_is_refused_before_they_are_made(text, trials, data_dir, tmp_path, capsys):
    config = tmp_path / "big.toml"
    config.write_text(text + f'\n[data]\ndata_dir = "{data_dir}"\nverify = false\nvalid_size = 50\n')
    assert sweep_main(["--config", str(config), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"asks for {trials} trials" in err and "--max-trials" in err, err
    assert not (tmp_path / "out").exists()


def test_max_trials_raises_the_limit():
    text = "seeds = 1500"
    with pytest.raises(SweepConfigError, match="asks for 1,500 trials, more than the 1,000"):
        parse_sweep(text)
    assert parse_sweep(text, max_trials=1500).n_trials == 1500


def test_missing_file_and_occupied_or_empty_output_folders_exit_2(data_dir, tmp_path, capsys):
    config = sweep_file(tmp_path / "ok.toml", data_dir, "finetune_lr = [0.1]")
    cases = [
        (["--config", str(tmp_path / "missing.toml"), "--output-dir", str(tmp_path / "a")], "does not exist"),
        (["--output-dir", str(tmp_path / "b"), "--resume"], "no sweep to resume"),
        (["--output-dir", str(tmp_path / "c")], "--config FILE.toml is needed"),
        (["--config", str(config), "--output-dir", str(tmp_path / "d"), "--max-concurrent", "0"], "--max-concurrent"),
    ]
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "sweep.toml").write_text(config.read_text())
    cases.append((["--config", str(config), "--output-dir", str(occupied)],
                  "already holds a sweep: continue it with --resume"))
    for argv, message in cases:
        assert sweep_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err, (argv, err)


# ---------------------------------------------------------------- the file's format, no Ray


def test_depth_and_units_build_the_layers_from_two_axes():
    sweep = parse_sweep('preset = "fast"\n[search]\ndepth = [1, 3]\nunits = [1000, 2000]\n'
                        'corruption_level = [0.0, 0.25]')
    assert len(sweep.configurations) == 8 and sweep.n_trials == 8
    shapes = {(tuple(c["hidden_layer_sizes"]), tuple(c["corruption_levels"]))
              for c in (sweep.trial_config(values, 89677) for values in sweep.configurations)}
    assert ((2000, 2000, 2000), (0.25, 0.25, 0.25)) in shapes and ((1000,), (0.0,)) in shapes
    assert len(shapes) == 8
    # depth alone keeps the preset's lists when they have that many entries, else repeats their first
    sweep = parse_sweep('[search]\ndepth = [2, 3]')
    levels = [sweep.trial_config(c, 1)["corruption_levels"] for c in sweep.configurations]
    assert levels == [[0.1, 0.1], [0.1, 0.2, 0.3]]
    # so do fixed layers of another depth, as on the command line
    sweep = parse_sweep('preset = "fast"\n[config]\nhidden_layer_sizes = [8]')
    assert validate_config(sweep.trial_config(sweep.configurations[0], 1))["corruption_levels"] == [0.1]


def test_list_valued_grid_entries():
    sweep = parse_sweep('[config]\ncorruption_level = 0.2\n[search]\nhidden_layer_sizes = [[500], [500, 250]]')
    assert [sweep.trial_config(c, 1)["hidden_layer_sizes"] for c in sweep.configurations] == [[500], [500, 250]]
    assert [sweep.trial_config(c, 1)["corruption_levels"] for c in sweep.configurations] == [[0.2], [0.2, 0.2]]


def test_seeds_are_derived_from_the_base_seed():
    assert parse_sweep('preset = "fast"\nseeds = 3').seeds == [89677, 89678, 89679]
    assert parse_sweep(f"seeds = 2\n[config]\nseed = {2 ** 32 - 1}").seeds == [2 ** 32 - 1, 0]
    assert parse_sweep("seeds = [89677, 1, 2]").seeds == [89677, 1, 2]
    with pytest.raises(SweepConfigError, match="distinct"):
        parse_sweep("seeds = [1, 1]")


def test_random_search_draws_are_reproducible_and_in_range():
    text = ('num_samples = 5\n[search]\nfinetune_lr = {loguniform = [0.001, 0.1]}\n'
            'finetune_momentum = {uniform = [0.5, 0.9]}\npretrain_lr = [0.01, 0.1]')
    sweep = parse_sweep(text)
    assert len(sweep.configurations) == 10
    assert sweep.configurations == parse_sweep(text).configurations
    assert sweep.configurations != parse_sweep("sample_seed = 1\n" + text).configurations
    assert all(0.001 <= c["finetune_lr"] <= 0.1 and 0.5 <= c["finetune_momentum"] <= 0.9 for c in sweep.configurations)
    assert len({c["finetune_lr"] for c in sweep.configurations}) == 10  # a fresh draw per grid point
    with pytest.raises(SweepConfigError, match="num_samples repeats the random draws"):
        parse_sweep("num_samples = 2\n[search]\nfinetune_lr = [0.1]")


@pytest.mark.parametrize("text, message", [
    ("[search]\nfinetune_momentum = {uniform = [-1.7e308, 1.7e308]}", "finetune_momentum must be in [0, 1)"),
    ("[search]\nfinetune_lr = {uniform = [1e-3, 1.7e308]}", "finetune_lr must be at most 3.403e+38"),
    ("[search]\nfinetune_lr = {loguniform = [1e-300, 1.7e308]}", "finetune_lr"),
    (f"[search]\nfinetune_lr = {{uniform = [1, {10 ** 400}]}}", "uniform needs [low, high] with finite low < high"),
    ("[search]\nfinetune_lr = {uniform = [0.01, inf]}", "uniform needs [low, high] with finite low < high"),
    ("[search]\nfinetune_lr = {uniform = [0.01, true]}", "uniform needs [low, high] with finite low < high"),
    ('[search]\nfinetune_lr = {uniform = [0.01, "0.1"]}', "uniform needs [low, high] with finite low < high"),
    ("[search]\nfinetune_lr = {uniform = [-0.0, 0.0]}", "uniform needs [low, high] with finite low < high"),
    (f"[search]\ntraining_epochs = [{10 ** 400}]", "training_epochs must be at most 2,147,483,647"),
    ("[search]\nunits = [9223372036854775807]", "hidden_layer_sizes[0] must be at most 2,147,483,647"),
    ('[config]\ntraining_epochs = "5"', "training_epochs must be an integer, got '5'"),
    ("[config]\npatience_epochs = 1e308", "patience_epochs must be at most 2,147,483,647"),
    ("[config]\npretrain_lr = 1e-46", "pretrain_lr = 1e-46 is 0 as a float32"),
    ("[config]\ncorruption_type = \"gaussian\"\n[search]\ncorruption_level = [1e308]", "must be at most 1e+30"),
    ("[search]\nfinetune_lr = [nan]", "finetune_lr must be a finite number > 0, got nan"),
    ('[scheduler]\ntype = "asha"\nreduction_factor = inf', "reduction_factor must be a finite number > 1, got inf"),
    ('[scheduler]\ntype = "asha"\nreduction_factor = 1e400', "reduction_factor must be a finite number > 1, got inf"),
    (f'[scheduler]\ntype = "asha"\nmax_t = {10 ** 30}', "max_t must be at most 2,147,483,647, got an integer of about 10**30"),
    (f"[data]\nvalid_size = {2 ** 63 - 1}", "valid_size must be at most 2,147,483,647"),
])
def test_sweep_numbers_are_checked_as_numbers(text, message):
    with pytest.raises(SweepConfigError, match="^sweep file: .*" + re.escape(message)):
        parse_sweep(text)


def test_rerun_command_gives_the_trial_configuration():
    sweep = parse_sweep('preset = "fast"\nseeds = 2\n[config]\nfinetune_corruption = 0.1\n[run]\nmode = "jax"\n'
                        '[search]\ndepth = [2]\nunits = [300]\nfinetune_lr = {loguniform = [0.01, 0.1]}')
    config = sweep.trial_config(sweep.configurations[0], sweep.seeds[1])
    argv = shlex.split(rerun_command(sweep, config))
    assert argv[:5] == ["python", "-m", "sda.SdA", "--preset", "fast"]
    args = build_parser().parse_args(argv[3:])
    assert validate_config(config_from_args(args)) == validate_config(config)
    assert args.mode == "JAX" and str(args.data_dir).endswith("data/mnist")


def test_summary_of_failed_and_stopped_trials():
    """Stopped trials are counted beside the mean of the finished ones, never averaged into it."""
    sweep = parse_sweep("seeds = 3\n[search]\nfinetune_lr = [0.1, 0.2]")
    rows = [{"configuration": 0, "status": "finished", "best_validation_error": 0.1, "test_error": 0.2},
            {"configuration": 0, "status": "finished", "best_validation_error": 0.3, "test_error": 0.4},
            {"configuration": 0, "status": "stopped", "best_validation_error": 0.9, "test_error": 0.9},
            {"configuration": 0, "status": "stopped", "best_validation_error": 0.8, "test_error": 0.8},
            {"configuration": 0, "status": "failed", "best_validation_error": None, "test_error": None},
            {"configuration": 1, "status": "failed", "best_validation_error": None, "test_error": None}]
    first, second = summarise(sweep, rows)
    assert (first["finished"], first["stopped"], first["failed"]) == (2, 2, 1)
    assert first["validation_error_mean"] == pytest.approx(0.2)
    assert first["validation_error_sd"] == pytest.approx(0.1414214)  # sample sd of (0.1, 0.3)
    assert first["validation_error"] == "20.00 ± 14.14 %"
    assert first["over"] == "mean over 2 finished trials; 2 stopped early by ASHA"
    assert second["validation_error_mean"] is None and second["validation_error"] == ""
    assert second["over"] == "no finished trial"
    line = best_line(sweep, [first, second], [{**row, "seed": 1, "command": "python -m sda.SdA"} for row in rows])
    assert "(mean over 2 finished trials; 2 stopped early by ASHA)" in line


def test_a_seed_only_summary_is_the_mean_and_sd_over_the_seeds(tmp_path, monkeypatch):
    import sda.sweep_report

    def no_curve(*args):
        raise AssertionError("a seed-only sweep draws no error against seed")
    monkeypatch.setattr(sda.sweep_report, "_panel", no_curve)
    sweep = parse_sweep("seeds = 3")
    rows = [{"configuration": 0, "seed": seed, "status": "finished", "best_validation_error": error,
             "test_error": error + 0.01, "command": "python -m sda.SdA"} for seed, error in ((1, 0.1), (2, 0.2), (3, 0.3))]
    summary = summarise(sweep, rows)
    line = best_line(sweep, summary, rows)
    assert line.startswith("over the seeds: validation error 20.00 ± 10.00 %, test error 21.00 ± 10.00 % "
                           "(mean ± sd over 3 finished trials); rerun (seed 1): ")
    assert plot_results(tmp_path / "results.png", sweep, rows).read_bytes()[:4] == b"\x89PNG"


def test_nothing_in_sda_imports_the_sweep():
    """The sweep sits at the top, beside the command line; Ray stays an optional extra."""
    code = ("import sys, sda.SdA, sda.cli, sda.estimators, sda.run; "
            "assert not [m for m in sys.modules if m.startswith(('sda.sweep', 'ray'))]")
    assert subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONWARNINGS": "ignore"}).returncode == 0


# ---------------------------------------------------------------- the shipped sweeps


def test_a_shipped_sweep_is_found_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert shipped_sweeps() == ["jmlr_mnist", "seeds", "smoke"]
    for given in ("smoke", "smoke.toml"):
        assert sweep_path(given) == shipped("sweeps") / "smoke.toml"
        assert _check_arguments(sweep_parser().parse_args(["--config", given, "--output-dir", "out"])).n_trials == 8
    (tmp_path / "smoke").write_text("seeds = 2")  # a file of the user's, named as given, comes first
    assert sweep_path("smoke") == Path("smoke")
    assert sweep_path("elsewhere/smoke") == Path("elsewhere/smoke")  # a path is never a name
    with pytest.raises(SweepConfigError, match="shipped sweeps, given by name: jmlr_mnist, seeds, smoke"):
        read_sweep(sweep_path("nonexistent"))


def test_the_shipped_mnist_is_the_checksummed_one():
    folder = shipped("mnist")
    for name, digest in MNIST_SHA256.items():
        assert hashlib.sha256(gzip.decompress((folder / f"{name}.gz").read_bytes())).hexdigest() == digest


@pytest.mark.parametrize("argv, message", [
    (["--config", "smoke", "--output-dir", "{out}", "--max-trials", "abc"],
     "sda-sweep: error: argument --max-trials: invalid int value: 'abc' (see --help)"),
    (["--config", "smoke"], "sda-sweep: error: the following arguments are required: --output-dir (see --help)"),
    (["--output-dir", "{out}", "--resume"], "sda-sweep: error: no sweep to resume in {out} (it lacks sweep.toml)"),
])
def test_refused_sweep_commands_are_one_line_before_ray(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    try:
        status = sweep_main([part.format(out=out) for part in argv])
    except SystemExit as exc:  # argparse's refusals
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2 and err.strip() == message.format(out=out), err
    assert not out.exists()


@pytest.mark.parametrize("results, message", [
    ('[1, 2]', "not the results a run writes"),
    ('{"finetuning": {}}', "not the results a run writes"),
    ('{"finetuning": {"best_validation_error": 0.1, "test_error": 1e999, "epochs": 2, "seconds": 1},'
     ' "pretraining": {"seconds": 1}}', "test_error must be a number in [0, 1] or null, got inf"),
    ('{"finetuning": {"best_validation_error": NaN, "test_error": 0.1, "epochs": 2, "seconds": 1},'
     ' "pretraining": {"seconds": 1}}', "best_validation_error must be a number in [0, 1] or null, got nan"),
    ('{"finetuning": {"best_validation_error": "0.1", "test_error": 0.1, "epochs": 2, "seconds": 1},'
     ' "pretraining": {"seconds": 1}}', "best_validation_error must be a number"),
    ('{"finetuning": {"best_validation_error": 0.1, "test_error": 0.1, "epochs": true, "seconds": 1},'
     ' "pretraining": {"seconds": 1}}', "epochs and seconds must be numbers >= 0"),
    ('{"finetuning": {"best_validation_error": 0.1, "test_error": 0.1, "epochs": 2, "seconds": -1e999},'
     ' "pretraining": {"seconds": 1}}', "epochs and seconds must be numbers >= 0"),
    ('{"finetuning": {"test_error": 0.9, "test_error": 0.1}}', "holds the key 'test_error' twice"),
])
def test_a_trials_forged_results_make_it_failed_with_the_reason(results, message, tmp_path):
    from sda.sweep_outcomes import trial_outcome
    (tmp_path / "results.json").write_text(results)
    outcome = trial_outcome(tmp_path, {})
    assert outcome["status"] == "failed" and message in outcome["message"], outcome
    assert outcome["test_error"] is None and "\n" not in outcome["message"]


def test_a_trials_forged_failure_message_is_refused(tmp_path):
    from sda.sweep_outcomes import trial_outcome
    (tmp_path / "failure.json").write_text('["not", "an", "object"]')
    outcome = trial_outcome(tmp_path, {})
    assert outcome["status"] == "failed" and "not the message a sweep writes" in outcome["message"], outcome
    good = {"phase": 1}
    (tmp_path / "failure.json").write_text('{"message": "training diverged:\\n at epoch 3"}')
    assert trial_outcome(tmp_path, good)["message"] == "training diverged: at epoch 3"


def test_forged_trial_files_name_no_trial_and_stop_nothing(tmp_path):
    from sda.sweep_outcomes import _trial_names
    files = {"deep": "[" * 100_000 + "]" * 100_000, "list": "[0, 1]", "twice": '{"configuration": 0, "seed": 1, '
             '"seed": 2}', "floats": '{"configuration": 0.5, "seed": 1}', "bools": '{"configuration": true, "seed": 1}',
             "good": '{"configuration": 3, "seed": 7, "node": "n"}'}
    for name, text in files.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "trial.json").write_text(text)
    assert _trial_names(tmp_path, {}) == {(3, 7): "good"}


def test_a_trial_folder_is_in_the_state_of_the_first_file_it_holds(tmp_path):
    from sda.run import LOCK_FILE
    from sda.sweep_outcomes import FAILURE_FILE, STOPPED_FILE, TRIAL_FILE, folder_state
    folder = tmp_path / "trial"
    assert folder_state(folder) == "new"
    folder.mkdir()
    for name in (LOCK_FILE, TRIAL_FILE):
        (folder / name).write_text("{}")
    assert folder_state(folder) == "new"
    # each file that a run or a sweep writes later outranks those before it
    for name, state in (("metrics.jsonl", "stopped before its first checkpoint"),
                        ("checkpoint.safetensors", "interrupted"), (STOPPED_FILE, "stopped"),
                        (FAILURE_FILE, "failed"), ("results.json", "finished")):
        (folder / name).write_text("{}")
        assert folder_state(folder) == state, name
