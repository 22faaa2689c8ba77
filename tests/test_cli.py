"""The script end to end on tiny synthetic data, and its refusals of bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from support import CPU_MODE
from sda.cli import main
from sda.run import PRESETS

TINY = ["--hidden-layers", "12", "8", "--corruption", "0.1", "0.2", "--pretraining-epochs", "2",
        "--pretrain-lr", "0.05", "--training-epochs", "15", "--finetune-lr", "0.2", "--batch-size", "10",
        "--valid-size", "50", "--no-verify", "--mode", CPU_MODE, "--quiet"]


def test_script_trains_and_writes_results(tiny_mnist_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(TINY + ["--data-dir", str(tiny_mnist_dir), "--output-dir", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["hidden_layer_sizes"] == [12, 8]
    assert results["config"]["pretrain_batch_size"] == results["config"]["finetune_batch_size"] == 10
    assert results["mode"] == CPU_MODE and results["device"] == "cpu"
    assert len(results["pretraining"]["costs"]) == 2
    assert all(len(c) == 2 for c in results["pretraining"]["costs"])
    ft = results["finetuning"]
    assert ft["best_validation_error"] < 0.1 and ft["test_error"] < 0.15  # learnable synthetic digits
    assert 1 <= ft["epochs"] <= 15 and len(ft["history"]) == ft["epochs"]
    summary = capsys.readouterr().out
    assert "best validation error" in summary and "test error" in summary


def test_flags_override_the_preset(tiny_mnist_dir):
    from sda.cli import build_parser, config_from_args
    args = build_parser().parse_args(["--preset", "quick", "--finetune-lr", "0.3"])
    config = config_from_args(args)
    assert config["finetune_lr"] == 0.3
    assert config["pretraining_epochs"] == PRESETS["quick"]["pretraining_epochs"]
    assert config_from_args(build_parser().parse_args([])) == PRESETS["tutorial"]


@pytest.mark.parametrize("flags, levels", [
    (["--hidden-layers", "8"], 0.1),                     # the preset's first level, for the one layer
    (["--hidden-layers", "8", "6", "4", "2"], 0.1),      # ... and for each of four
    (["--hidden-layers", "8", "6", "4"], [0.1, 0.2, 0.3]),  # the preset's depth: its own levels
    (["--hidden-layers", "8", "--corruption", "0.4"], 0.4),
    (["--preset", "ufldl", "--hidden-layers", "8", "6", "4"], 0.0),
])
def test_hidden_layers_of_another_depth_keep_the_presets_noise(flags, levels):
    from sda.cli import build_parser, config_from_args
    from sda.run import validate_config
    config = config_from_args(build_parser().parse_args(["--preset", "fast", *flags]))
    assert config["corruption_levels"] == levels
    assert validate_config(config)["corruption_levels"] == np.broadcast_to(levels, len(config["hidden_layer_sizes"])).tolist()


@pytest.mark.parametrize("flags, message", [
    (["--pretrain-lr", "-0.1"], "--pretrain-lr must be a finite number > 0"),
    (["--finetune-lr", "0"], "--finetune-lr must be a finite number > 0"),
    (["--corruption", "0.1", "1.0"], "--corruption must be in [0, 1)"),
    (["--corruption", "0.1", "0.2", "0.3"], "--corruption needs one value per hidden layer"),
    (["--hidden-layers", "12", "0"], "--hidden-layers[1] must be >= 1"),
    (["--hidden-layers", *["2"] * 101, "--corruption", "0.1"], "--hidden-layers must have at most 100 hidden layers"),
    (["--batch-size", "1000"], "--batch-size is 1000, more than the 250 training examples"),  # the flag given
    (["--training-epochs", "0"], "--training-epochs must be >= 1"),
])
def test_bad_values_exit_nonzero_with_one_line(flags, message, tiny_mnist_dir, tmp_path, capsys):
    args = TINY + ["--data-dir", str(tiny_mnist_dir), "--output-dir", str(tmp_path)] + flags
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "results.json").exists()


def test_missing_data_directory_and_checksum_are_explained(tmp_path, tiny_mnist_dir, capsys):
    assert main(["--data-dir", str(tmp_path / "absent"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["--data-dir", str(tiny_mnist_dir), "--valid-size", "50", "--quiet"]) == 2
    assert "sha256" in capsys.readouterr().err


def test_module_entry_point_runs_as_a_subprocess(tiny_mnist_dir, tmp_path):
    for entry in (["-m", "sda.SdA"], ["sda/SdA.py"]):
        proc = subprocess.run([sys.executable, *entry, "--data-dir", str(tmp_path / "absent")],
                              capture_output=True, text=True, timeout=120,
                              cwd=__import__("pathlib").Path(__file__).parent.parent)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and "does not exist" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "sda.SdA", *TINY, "--training-epochs", "2",
                           "--data-dir", str(tiny_mnist_dir), "--output-dir", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "results.json").exists()


def test_evaluate_scores_the_saved_best_model_exactly(tiny_mnist_dir, tmp_path, capsys):
    out = tmp_path / "out"
    data = ["--data-dir", str(tiny_mnist_dir), "--valid-size", "50", "--no-verify", "--mode", CPU_MODE]
    assert main(TINY + ["--data-dir", str(tiny_mnist_dir), "--output-dir", str(out), "--no-pictures"]) == 0
    capsys.readouterr()
    assert main(["--evaluate", str(out / "best_model.safetensors"), *data]) == 0
    printed = capsys.readouterr().out
    want = json.loads((out / "results.json").read_text())["finetuning"]["test_error"]
    assert f"test error {want:.2%}" in printed


def test_divergence_stops_with_a_message_and_keeps_the_checkpoint(tiny_mnist_dir, tmp_path, capsys):
    out = tmp_path / "out"
    args = TINY + ["--data-dir", str(tiny_mnist_dir), "--output-dir", str(out), "--finetune-lr", "1e38"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "diverged" in err and "fine-tuning, epoch 1" in err and "1e+38" in err
    from sda.checkpoint import load_checkpoint
    kept = load_checkpoint(out / "checkpoint.safetensors")  # the last good one: pretraining finished
    assert [len(c) for c in kept.pretrain.costs] == [2, 2] and kept.fit is None
    assert not (out / "results.json").exists()
