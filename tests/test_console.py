"""What a newcomer sees in a terminal: no warning from the libraries, one line on the mode, every
picture, scripts that answer --help at once, and program names and presets that explain themselves."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sda.run import PRESETS
from sda.version import __version__

ROOT = Path(__file__).parent.parent
#: the README's first command, on the tiny data, with the network made tiny too
QUICK = ["--preset", "quick", "--hidden-layers", "12", "8", "--corruption", "0.1", "0.2", "--valid-size", "50",
         "--no-verify"]
PICTURES = ("filters_layer0.png", "filters_layer1.png", "reconstructions.png", "learning_curves.png")


def without_blas(tmp_path) -> dict:
    """An environment in which PyTensor finds no BLAS, as on a fresh machine: its compiler is a
    wrapper that refuses to link any BLAS library, and no BLAS flags are set, so that PyTensor
    searches, fails and warns, as it does there."""
    compiler = shutil.which("g++")
    env = dict(os.environ)
    flags = [f for f in env.get("PYTENSOR_FLAGS", "").split(",") if f and not f.startswith("blas__ldflags")]
    if compiler:
        wrapper = tmp_path / "g++-without-blas"
        wrapper.write_text("#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in *blas*|*mkl*|*lapack*) exit 1;; esac; done\n"
                           f"exec {compiler} \"$@\"\n")
        wrapper.chmod(0o755)
        flags.append(f"cxx={wrapper}")
    env["PYTENSOR_FLAGS"] = ",".join(flags)
    env.pop("PYTHONWARNINGS", None)
    return env


@pytest.mark.parametrize("mode", [[], ["--mode", "JAX"]], ids=["auto", "JAX"])
def test_first_command_prints_no_warning_and_writes_every_picture(mode, tiny_mnist_dir, tmp_path):
    if mode and "JAX" not in __import__("sda.modes", fromlist=["x"]).available_modes():
        pytest.skip("jax is not installed")
    out = tmp_path / "out"
    # -W default shows every warning once, whatever filters the environment sets
    proc = subprocess.run([sys.executable, "-W", "default", "-m", "sda.SdA", *QUICK, *mode,
                           "--data-dir", str(tiny_mnist_dir), "--output-dir", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT, env=without_blas(tmp_path))
    assert proc.returncode == 0, proc.stderr
    printed = proc.stdout + proc.stderr
    assert not re.search(r"warn", printed, re.IGNORECASE), printed
    mode_lines = [line for line in printed.splitlines() if line.startswith("compile mode")]
    assert len(mode_lines) == 1
    if shutil.which("g++"):  # PyTensor found no BLAS: the one line says how to get one
        assert "no BLAS found" in mode_lines[0] and "apt-get install libopenblas-dev" in mode_lines[0]
    assert "preset quick: a first look" in printed  # what the preset is, before it starts
    for name in PICTURES:
        assert (out / name).stat().st_size > 1000


@pytest.mark.parametrize("script", ["dA", "mlp", "logistic_sgd"])
def test_tutorial_scripts_answer_help_at_once_and_refuse_bad_values(script):
    proc = subprocess.run([sys.executable, "-m", f"sda.{script}", "--help"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: python -m sda.{script}") and "--learning-rate" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", f"sda.{script}", "--batch-size", "0", "--quiet"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "sda: error: --batch-size must be >= 1, got 0"
    proc = subprocess.run([sys.executable, "-m", f"sda.{script}", "--epochs", "many"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 2 and proc.stderr.startswith("sda: error: argument --epochs: invalid int value")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_dA_script_trains_and_writes_its_filters(tiny_mnist_dir, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sda.dA", "--data-dir", str(tiny_mnist_dir), "--epochs", "1",
                           "--n-hidden", "9", "--corruption", "0.3", "--output-folder", str(tmp_path / "dA"),
                           "--valid-size", "50", "--no-verify", "--quiet"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "dA" / "filters_corruption_30.png").exists()
    assert "corruption 30%: reconstruction cost" in proc.stdout


def installed_command(name: str) -> Path:
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.skip(f"{name} is not installed (pip install -e .)")
    return path


def test_sda_train_names_itself_and_prints_its_version():
    command = installed_command("sda-train")
    proc = subprocess.run([str(command), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"sda {__version__}"
    proc = subprocess.run([str(command), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.stdout.startswith("usage: sda-train")
    proc = subprocess.run([sys.executable, "-m", "sda.SdA", "--help"], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    assert proc.stdout.startswith("usage: python -m sda.SdA")


def test_presets_are_listed_with_what_they_are_and_what_they_set(capsys):
    from sda.cli import build_parser, main
    assert main(["--list-presets"]) == 0
    listed = capsys.readouterr().out
    for name in PRESETS:
        assert re.search(rf"^  {name}: \w+", listed, re.MULTILINE), listed
    assert "the tutorial's but --pretraining-epochs 1, --pretrain-lr 0.01" in listed  # quick's own values
    assert "--hidden-layers 1000 1000 1000" in listed
    assert listed.strip() in build_parser("sda-train").format_help()


def test_threads_and_device_flags(tiny_mnist_dir, tmp_path, capsys, monkeypatch):
    from sda.cli import main
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)  # --device cpu sets it: restored afterwards
    data = ["--data-dir", str(tiny_mnist_dir), "--output-dir", str(tmp_path / "o"), *QUICK, "--quiet"]
    assert main([*data, "--threads", "0"]) == 2
    assert capsys.readouterr().err.strip() == "sda: error: --threads must be an integer >= 1, got 0"
    if "gpu" not in {d.platform for d in __import__("sda.modes", fromlist=["x"]).jax_devices()}:
        assert main([*data, "--device", "gpu"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("sda: error: --device gpu: jax sees no GPU") and len(err.splitlines()) == 1
    assert main([*data, "--device", "cpu"]) == 0
    assert os.environ["JAX_PLATFORMS"] == "cpu"
    assert json.loads((tmp_path / "o" / "results.json").read_text())["device"] == "cpu"


def test_threads_limit_the_cores_before_the_libraries_load(tmp_path):
    """Run in a child: narrowing the cores is for the whole process."""
    code = ("import os, sys; from sda.launch import _early_flags; from sda.execution import limit_threads; "
            "limit_threads(int(_early_flags(sys.argv[1:]).threads)); "
            "print(len(os.sched_getaffinity(0)), os.environ['OPENBLAS_NUM_THREADS'], 'numpy' in sys.modules)")
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this system")
    proc = subprocess.run([sys.executable, "-c", code, "--threads", "1"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.stdout.split() == ["1", "1", "False"], proc.stderr


def test_every_flag_of_the_script_is_in_the_readme():
    from sda.cli import build_parser
    readme = (ROOT / "README.md").read_text()
    undocumented = [action.option_strings for action in build_parser()._actions
                    if action.option_strings and action.dest != "help"
                    and not any(f"`{flag}" in readme for flag in action.option_strings if flag.startswith("--"))]
    assert undocumented == []
