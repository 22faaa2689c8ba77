"""--log-to tensorboard and --log-to mlflow receive the records of metrics.jsonl (skipped without the extras)."""

import json
import struct

import numpy as np
import pytest

from support import CPU_MODE
from sda.cli import main

TINY = ["--hidden-layers", "12", "8", "--corruption", "0.1", "0.2", "--pretraining-epochs", "2",
        "--training-epochs", "3", "--finetune-lr", "0.2", "--batch-size", "10", "--valid-size", "50", "--no-verify",
        "--mode", CPU_MODE, "--quiet", "--no-pictures"]


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def tensorboard_scalars(directory) -> dict:
    """{tag: [(step, value), ...]} read back from the event files (TFRecord framing: length,
    its CRC, the serialised Event, its CRC)."""
    from tensorboardX.proto.event_pb2 import Event
    scalars = {}
    for path in sorted(directory.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset:offset + 8])
            event = Event.FromString(data[offset + 12: offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_tensorboard_gets_every_epoch_of_metrics_jsonl(tiny_mnist_dir, tmp_path):
    pytest.importorskip("tensorboardX")
    out = tmp_path / "out"
    assert main([*TINY, "--data-dir", str(tiny_mnist_dir), "--output-dir", str(out), "--log-to", "tensorboard"]) == 0
    scalars = tensorboard_scalars(out / "tensorboard")
    records = metrics(out)
    layer1 = [(r["epoch"], r["cost"]) for r in records if r["phase"] == "pretraining" and r["layer"] == 1]
    np.testing.assert_allclose(scalars["pretraining/layer1/cost"], layer1, rtol=1e-6)
    validation = [(r["epoch"], r["validation_error"]) for r in records if r["phase"] == "fine-tuning"]
    np.testing.assert_allclose(scalars["fine-tuning/validation_error"], validation, rtol=1e-6)
    assert len(validation) == 3
    assert len(scalars["fine-tuning/seconds"]) == 3 and len(scalars["pretraining/layer0/seconds"]) == 2


def test_mlflow_gets_the_configuration_and_every_epoch(tiny_mnist_dir, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.chdir(tmp_path)  # MLflow's default store: ./mlflow.db
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "run-a"
    assert main([*TINY, "--data-dir", str(tiny_mnist_dir), "--output-dir", str(out), "--log-to", "mlflow"]) == 0
    assert (tmp_path / "mlflow.db").exists()
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.run_name == "run-a" and run.info.status == "FINISHED"
    assert run.data.params["hidden_layer_sizes"] == "[12, 8]" and run.data.params["finetune_lr"] == "0.2"
    history = client.get_metric_history(run.info.run_id, "fine-tuning_validation_error")
    validation = [r["validation_error"] for r in metrics(out) if r["phase"] == "fine-tuning"]
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(validation)
    assert len(client.get_metric_history(run.info.run_id, "pretraining_layer0_cost")) == 2


def test_unknown_or_missing_logger_is_one_line(tiny_mnist_dir, tmp_path, capsys, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_tensorboardx(name, *args, **kwargs):
        if name == "tensorboardX":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboardx)
    assert main([*TINY, "--data-dir", str(tiny_mnist_dir), "--output-dir", str(tmp_path), "--log-to",
                 "tensorboard"]) == 2
    assert capsys.readouterr().err.strip() == ('sda: error: --log-to tensorboard needs tensorboardX: '
                                               'pip install -e ".[tensorboard]"')


@pytest.mark.parametrize("uri", ["nonsense://x", "sqlite:///{blocker}/x.db", "http://127.0.0.1:1"])
def test_a_tracking_store_mlflow_cannot_use_is_one_line_before_training(uri, tiny_mnist_dir, tmp_path, capsys,
                                                                      monkeypatch):
    pytest.importorskip("mlflow")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri.format(blocker=blocker))
    out = tmp_path / "out"
    assert main([*TINY, "--data-dir", str(tiny_mnist_dir), "--output-dir", str(out), "--log-to", "mlflow"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot use the tracking store" in err and len(err.splitlines()) == 1, err
    assert not (out / "checkpoint.safetensors").exists()  # nothing trained


@pytest.mark.parametrize("uri, message", [
    ("databricks", "databricks"),  # MLflow logs a warning of the credentials it lacks as it tries
    ("file:///{tmp}/mlruns", "MLFLOW_ALLOW_FILE_STORE"),  # MLflow's remedy, at the end of its message
])
def test_a_tracking_store_refused_is_one_line_of_stderr_with_mlflows_remedy(uri, message, tiny_mnist_dir, tmp_path):
    import os
    import subprocess
    import sys
    mlflow = pytest.importorskip("mlflow")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DATABRICKS_", "MLFLOW_"))}  # no credentials, no opt-outs of the user's
    env["MLFLOW_TRACKING_URI"] = uri.format(tmp=tmp_path)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "sda.SdA", *TINY, "--data-dir", str(tiny_mnist_dir), "--output-dir",
                           str(out), "--log-to", "mlflow", "--training-epochs", "1"],
                          capture_output=True, text=True, env=env, timeout=300)
    err = done.stderr.strip()
    if done.returncode == 0 and uri.startswith("file:"):
        pytest.skip(f"mlflow {mlflow.__version__} still takes file stores")
    assert done.returncode == 2 and len(err.splitlines()) == 1, err
    assert "cannot use the tracking store" in err and message in err, err
    assert not (out / "checkpoint.safetensors").exists()
