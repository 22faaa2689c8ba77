"""A run killed with SIGKILL and resumed ends with the parameters of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import write_tiny_mnist
from support import CPU_MODE
from sda.checkpoint import CheckpointError, load_checkpoint
from sda.persistence import read_model_file
from sda.SdA import SdA

TRAINING_EPOCHS = 60
RUN = ["--hidden-layers", "300", "300", "--corruption", "0.1", "0.2", "--pretraining-epochs", "3",
       "--pretrain-lr", "0.05", "--training-epochs", str(TRAINING_EPOCHS), "--finetune-lr", "0.1",
       "--finetune-momentum", "0.5", "--finetune-lr-decay", "0.99", "--patience-epochs", "1000",
       "--batch-size", "10", "--valid-size", "50", "--no-verify", "--mode", CPU_MODE, "--quiet", "--seed", "7"]


def sda_command(*args):
    return [sys.executable, "-m", "sda.SdA", *RUN, *args]


def progress(path):
    """(pretraining epochs done over all layers, fine-tuning epochs done), or None."""
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError:  # not written yet
        return None
    return (sum(len(c) for c in checkpoint.pretrain.costs),
            0 if checkpoint.fit is None else checkpoint.fit.epoch)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """(the data folder, the output folder of the run uninterrupted): one for both kills."""
    folder = write_tiny_mnist(tmp_path_factory.mktemp("resume"))
    subprocess.run(sda_command("--data-dir", str(folder), "--output-dir", str(folder / "reference")), check=True,
                   timeout=300)
    return folder, folder / "reference"


@pytest.mark.parametrize("kill_at", [(2, 0), (6, 3)], ids=["during-pretraining", "during-finetuning"])
def test_sigkill_then_resume_equals_uninterrupted_run(kill_at, uninterrupted, tmp_path):
    data_dir, reference = uninterrupted
    data = ["--data-dir", str(data_dir)]

    killed = tmp_path / "killed"
    proc = subprocess.Popen(sda_command(*data, "--output-dir", str(killed)))
    deadline = time.time() + 240
    while (progress(killed / "checkpoint.safetensors") or (0, 0)) < kill_at and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    stopped_at = progress(killed / "checkpoint.safetensors")
    assert kill_at <= stopped_at < (6, TRAINING_EPOCHS)
    assert not (killed / "results.json").exists()

    subprocess.run([sys.executable, "-m", "sda.SdA", "--resume", str(killed), *data, "--no-verify",
                    "--valid-size", "50", "--mode", CPU_MODE, "--quiet"], check=True, timeout=300)
    want = json.loads((reference / "results.json").read_text())["finetuning"]
    got = json.loads((killed / "results.json").read_text())["finetuning"]
    assert got["epochs"] == want["epochs"] == TRAINING_EPOCHS
    assert got["best_validation_error"] == want["best_validation_error"]
    assert got["test_error"] == want["test_error"]
    _, want_params = read_model_file(reference / "best_model.safetensors")
    _, got_params = read_model_file(killed / "best_model.safetensors")
    assert list(got_params) == list(want_params)
    for g, w in zip(got_params.values(), want_params.values()):
        np.testing.assert_array_equal(g, w)
    final_ref, final_resumed = load_checkpoint(reference / "checkpoint.safetensors"), load_checkpoint(killed / "checkpoint.safetensors")
    for g, w in zip(final_resumed.state, final_ref.state):  # parameters, velocities, learning rate
        np.testing.assert_array_equal(g, w)
    # metrics.jsonl: every epoch once, in order, whatever the kill left in it
    records = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [(r["phase"], r.get("layer"), r["epoch"]) for r in records] == (
        [("pretraining", k, e) for k in (0, 1) for e in (1, 2, 3)]
        + [("fine-tuning", None, e) for e in range(1, TRAINING_EPOCHS + 1)])
    assert [r["step"] for r in records] == list(range(1, 6 + TRAINING_EPOCHS + 1))


@pytest.mark.skipif("JAX" not in __import__("sda.modes").modes.available_modes(), reason="needs jax")
def test_jax_fine_tuning_noise_goes_on_from_where_pretraining_left_it():
    """Fine-tuning's input noise comes from the first dA's generator, which pretraining has drawn
    from; under JAX the fine-tuning step holds its own copy, compiled before pretraining began.
    With a pretraining rate too small to move a float32 weight, one more pretraining epoch changes
    fine-tuning only through where that noise stands: its costs must change (with the copy's
    first state they would not), and so must the model's generators after the run."""
    from sda.run import train_SdA

    rng = np.random.RandomState(1)
    images, labels = rng.uniform(size=(60, 16)).astype("float32"), rng.randint(3, size=60).astype("int32")
    config = dict(hidden_layer_sizes=[8], corruption_levels=[0.3], n_outs=3, pretrain_lr=1e-30, pretrain_batch_size=10,
                  training_epochs=2, finetune_lr=0.1, finetune_batch_size=10, finetune_corruption=0.3,
                  finetune_dropout_hidden=0.5, seed=2, mode="JAX", progress=False, log=None)
    runs = [train_SdA([(images[:40], labels[:40]), (images[40:], labels[40:]), None], pretraining_epochs=epochs,
                      **config) for epochs in (1, 2)]
    finetuning_costs = [[r["cost"] for r in run.finetuning.history] for run in runs]
    assert finetuning_costs[0] != finetuning_costs[1]
    unused = SdA(np.random.RandomState(2), n_ins=16, hidden_layers_sizes=[8], n_outs=3, corruption_levels=[0.3])
    state = lambda model: [str(g.get_value().bit_generator.state) for g in model.noise_generators()]
    assert all(a != b for a, b in zip(state(runs[0].model), state(unused)))  # where the noise stands now


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    from sda.cli import main
    assert main(["--resume", str(tmp_path), "--quiet"]) == 2
    assert "checkpoint.safetensors" in capsys.readouterr().err


def test_resuming_a_run_of_sda_0_3_names_its_npz_checkpoint(tmp_path, capsys):
    import io
    import json
    from sda.cli import main
    buf = io.BytesIO()
    header = json.dumps({"format": "sda-checkpoint", "format_version": 3}).encode()
    np.savez(buf, __header__=np.frombuffer(header, np.uint8), state_0=np.zeros(3))
    (tmp_path / "checkpoint.npz").write_bytes(buf.getvalue())
    assert main(["--resume", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "checkpoint.npz is an .npz checkpoint (format version 3)" in err and "start the run again" in err, err
    assert len(err.splitlines()) == 1


def _jax_noise_run():
    """(the data, the settings) of a tiny JAX run whose costs show every epoch's noise."""
    rng = np.random.RandomState(0)
    images, labels = rng.uniform(size=(120, 20)).astype("float32"), rng.randint(3, size=120).astype("int32")
    datasets = [(images[:80], labels[:80]), (images[80:], labels[80:]), None]
    config = dict(hidden_layer_sizes=[12], corruption_levels=[0.3], n_outs=3, pretraining_epochs=3, pretrain_lr=1e-30,
                  pretrain_batch_size=10, training_epochs=3, finetune_lr=0.1, finetune_batch_size=10,
                  finetune_dropout_hidden=0.5, finetune_corruption=0.2, seed=5)
    return datasets, config


def _noise_costs(run):
    return run.pretraining.costs[0], [r["cost"] for r in run.finetuning.history]


@pytest.fixture(scope="module")
def fresh_jax_costs(tmp_path_factory):
    """The costs of the uninterrupted JAX run, which both stops below resume to."""
    from sda.run import train_SdA
    datasets, config = _jax_noise_run()
    fresh = train_SdA(datasets, output_dir=tmp_path_factory.mktemp("jax") / "fresh", mode="JAX", progress=False,
                      log=None, **config)
    return _noise_costs(fresh)


@pytest.mark.skipif("JAX" not in __import__("sda.modes").modes.available_modes(), reason="needs jax")
@pytest.mark.parametrize("stop_in", ["pretraining", "fine-tuning"])
def test_a_resumed_jax_run_continues_its_noise_exactly(stop_in, fresh_jax_costs, tmp_path):
    """JAX compiles a copy of each noise generator that the generator itself never sees advance:
    without writing it back, a resumed run would draw its first epochs' masks again.  With a
    pretraining rate too small to move a float32 weight, a pretraining epoch's cost depends on its
    masks alone; fine-tuning (its softmax starts at zero, so it must learn to show any noise)
    depends on its dropout masks, on its input noise (drawn from the first dA's generator) and on
    its parameters, all of which must continue exactly."""
    from sda.run import train_SdA

    datasets, config = _jax_noise_run()
    quiet = dict(mode="JAX", progress=False, log=None)
    assert all(len(set(epochs)) == 3 for epochs in fresh_jax_costs)  # every epoch draws other masks

    class Stop(Exception):
        pass

    def stop_after_one_epoch(pretrain, state):
        if (state is None) == (stop_in == "pretraining"):
            raise Stop

    with pytest.raises(Stop):
        train_SdA(datasets, output_dir=tmp_path / "stopped", on_epoch_end=stop_after_one_epoch, **quiet, **config)
    resumed = train_SdA(datasets, output_dir=tmp_path / "stopped", resume=True, **quiet)
    assert _noise_costs(resumed) == fresh_jax_costs


# --- metrics.jsonl: appended epoch by epoch, and whole again after a resume ---

TINY_RUN = dict(hidden_layer_sizes=[6, 5], corruption_levels=[0.1, 0.2], n_outs=2, pretraining_epochs=2,
                pretrain_batch_size=10, training_epochs=4, finetune_batch_size=10, patience_epochs=100, seed=3)
# 2 layers x 2 pretraining epochs, then 4 fine-tuning epochs
TINY_EPOCHS = [("pretraining", 0, 1), ("pretraining", 0, 2), ("pretraining", 1, 1), ("pretraining", 1, 2),
               *(("fine-tuning", None, e) for e in range(1, 5))]


def tiny_datasets():
    rng = np.random.RandomState(0)
    images, labels = rng.uniform(size=(60, 16)).astype("float32"), rng.randint(2, size=60).astype("int32")
    return [(images[:40], labels[:40]), (images[40:], labels[40:]), None]


def metrics_records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]  # a torn line fails here


def check_one_record_per_epoch(records):
    from datetime import datetime, timedelta
    assert [(r["phase"], r.get("layer"), r["epoch"]) for r in records] == TINY_EPOCHS
    assert [r["step"] for r in records] == list(range(1, len(TINY_EPOCHS) + 1))  # strictly increasing, by one
    times = [datetime.fromisoformat(r["time"]) for r in records]
    assert all(t.utcoffset() == timedelta(0) for t in times) and times == sorted(times)


def test_a_resumed_runs_metrics_hold_each_epoch_once_in_order(tmp_path):
    """Stopped in fine-tuning, with the last line lost and half a line written after it (a kill
    between the checkpoint and the metrics, then a kill within a write), the resumed run's
    metrics.jsonl holds the checkpoint's epochs, then the resumed ones: none twice, none torn."""
    from sda.run import train_SdA

    class Stop(Exception):
        pass

    def stop_in_fine_tuning(pretrain, state):
        if state is not None and state.epoch == 2:
            raise Stop

    out, quiet = tmp_path / "run", dict(mode=CPU_MODE, progress=False, log=None)
    with pytest.raises(Stop):
        train_SdA(tiny_datasets(), output_dir=out, on_epoch_end=stop_in_fine_tuning, **quiet, **TINY_RUN)
    before = metrics_records(out / "metrics.jsonl")
    assert len(before) == 6  # 4 pretraining epochs and 2 fine-tuning ones, all in the checkpoint
    lines = (out / "metrics.jsonl").read_text().splitlines(keepends=True)
    (out / "metrics.jsonl").write_text("".join(lines[:-1]) + lines[-1][:20])

    train_SdA(tiny_datasets(), output_dir=out, resume=True, **quiet)
    records = metrics_records(out / "metrics.jsonl")
    check_one_record_per_epoch(records)
    assert records[:6] == before  # the checkpoint's epochs as the first process recorded them, times included


def test_metrics_are_appended_not_rewritten(tmp_path):
    """A reader that opened metrics.jsonl after the first epoch goes on reading every later epoch
    from the same file (a rewrite would replace the file under it), and each epoch adds one line
    behind bytes that stay as they were."""
    from sda.run import train_SdA

    path, seen, reader = tmp_path / "run" / "metrics.jsonl", [], []

    def follow(pretrain, state):
        if not reader:
            reader.append(open(path, "rb"))
        seen.append(path.read_bytes())

    train_SdA(tiny_datasets(), output_dir=tmp_path / "run", on_epoch_end=follow, mode=CPU_MODE, progress=False,
              log=None, **TINY_RUN)
    with reader[0] as f:
        assert f.read() == path.read_bytes()
    for earlier, later in zip(seen, seen[1:]):
        assert later.startswith(earlier) and later.count(b"\n") == earlier.count(b"\n") + 1
    check_one_record_per_epoch(metrics_records(path))


def test_results_record_the_libraries_and_the_blas_that_computed(tmp_path):
    import importlib.util

    import pytensor
    import scipy

    from sda.run import train_SdA
    train_SdA(tiny_datasets(), output_dir=tmp_path / "run", mode=CPU_MODE, progress=False, log=None,
              **dict(TINY_RUN, pretraining_epochs=0, training_epochs=1))
    versions = json.loads((tmp_path / "run" / "results.json").read_text())["versions"]
    assert versions["scipy"] == scipy.__version__
    for name in ("jax", "jaxlib"):
        assert (versions[name] is None) == (importlib.util.find_spec(name) is None), name
    if versions["jax"] is not None:
        assert versions["jax"] == __import__("jax").__version__
    ldflags = pytensor.config.blas__ldflags.strip()
    assert versions["blas"] == (ldflags or None) and versions["blas"] != ""


def test_the_installed_versions_are_read_once_a_process(monkeypatch):
    import importlib.metadata

    from sda.run import _installed_version, versions
    versions()
    asked = []
    monkeypatch.setattr(importlib.metadata, "version", lambda name: asked.append(name) or "0")
    assert versions() == versions() and asked == []  # every fit's results.json, without a scan of the metadata
    _installed_version.cache_clear()
    try:
        assert versions()["scipy"] == "0" and sorted(asked) == ["jax", "jaxlib", "scipy"]
    finally:
        _installed_version.cache_clear()


def test_a_pytensor_without_blas_is_recorded_as_none():
    import pytensor

    from sda.run import versions
    with pytensor.config.change_flags(blas__ldflags=""):
        assert versions()["blas"] is None
    with pytensor.config.change_flags(blas__ldflags="-lopenblas "):
        assert versions()["blas"] == "-lopenblas"
