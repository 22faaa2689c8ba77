"""A careless or hostile user: reused folders, resumes on other data or settings, forged
checkpoints, impossible values, exploding training. Each ends in the right result or one line
on stderr with exit status 2 (1 for divergence), and nothing the user had is lost or mixed."""

import json

import numpy as np
import pytest
from filelock import FileLock

from conftest import synthetic_digits, write_idx
from support import CPU_MODE
from test_cli import TINY
from sda.checkpoint import CHECKPOINT_VERSION, checkpoint_digest, load_checkpoint
from sda.cli import main
from sda.data import MNIST_FILES
from sda.persistence import read_model_file, read_tensor_file, write_tensor_file
from sda.run import RunError, train_SdA

FAST = TINY + ["--no-pictures", "--training-epochs", "2"]


def run_cli(capsys, *args):
    """(exit status, stderr) of the command line; stderr must be one line when the run fails."""
    status = main([*FAST, *map(str, args)])
    err = capsys.readouterr().err.strip()
    if status != 0:
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return status, err


@pytest.fixture
def data(tiny_mnist_dir):
    return ["--data-dir", tiny_mnist_dir]


def snapshot(directory):
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


# --- output folders ---

def test_a_folder_holding_a_run_is_refused_and_left_as_it_was(data, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(capsys, *data, "--output-dir", out)[0] == 0
    before = snapshot(out)
    status, err = run_cli(capsys, *data, "--output-dir", out, "--hidden-layers", "9", "7")
    assert status == 2 and "--resume" in err and "--overwrite" in err
    assert snapshot(out) == before


def test_overwrite_replaces_the_whole_earlier_run(data, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(capsys, *data, "--output-dir", out, "--training-epochs", "3")[0] == 0
    (out / "notes.txt").write_text("mine")
    assert run_cli(capsys, *data, "--output-dir", out, "--overwrite", "--hidden-layers", "9", "7")[0] == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["hidden_layer_sizes"] == [9, 7] and results["finetuning"]["epochs"] <= 2
    assert load_checkpoint(out / "checkpoint.safetensors").config["hidden_layer_sizes"] == [9, 7]
    assert json.loads(json.dumps(read_model_file(out / "best_model.safetensors")[0]["config"]))[
        "hidden_layers_sizes"] == [9, 7]
    assert (out / "notes.txt").read_text() == "mine"  # not a file of the run: left alone


def test_overwrite_removes_only_the_files_the_run_wrote(data, tmp_path, capsys):
    pytest.importorskip("tensorboardX")
    out = tmp_path / "out"
    assert run_cli(capsys, *data, "--output-dir", out, "--log-to", "tensorboard")[0] == 0
    (out / "filters_layer0.png").write_text("a picture of the earlier run")
    written = sorted(p.name for p in (out / "tensorboard").iterdir())
    mine = [out / ".notes.tmp", out / "filters_layer_old_copy.png", out / "tensorboard" / "events.out.tfevents.mine",
            out / ".checkpoint.safetensors.tmp", out / "results.json.bak"]
    for path in mine:
        path.write_text("mine")
    assert run_cli(capsys, *data, "--output-dir", out, "--overwrite")[0] == 0
    assert all(path.read_text() == "mine" for path in mine)
    assert not (out / "filters_layer0.png").exists()  # the earlier run's pictures
    assert sorted(p.name for p in (out / "tensorboard").iterdir()) == ["events.out.tfevents.mine"], written


def test_a_folder_holding_only_files_of_the_user_is_not_a_run(data, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".notes.tmp").write_text("mine")
    (out / "filters_layer_old_copy.png").write_text("mine")
    assert run_cli(capsys, *data, "--output-dir", out)[0] == 0
    assert (out / ".notes.tmp").read_text() == "mine"


def test_a_lock_file_that_is_a_symbolic_link_is_refused_and_never_followed(data, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "elsewhere"
    (out / ".sda.lock").symlink_to(target)
    status, err = run_cli(capsys, *data, "--output-dir", out)
    assert status == 2 and "symbolic link" in err
    assert not target.exists() and (out / ".sda.lock").is_symlink()


def test_a_lock_path_that_is_a_folder_and_an_output_folder_that_is_a_dangling_link_are_one_line(data, tmp_path,
                                                                                                 capsys):
    out = tmp_path / "out"
    (out / ".sda.lock").mkdir(parents=True)
    status, err = run_cli(capsys, *data, "--output-dir", out)
    assert status == 2 and "cannot use output directory" in err and len(err.strip().splitlines()) == 1, err
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    status, err = run_cli(capsys, *data, "--output-dir", link)
    assert status == 2 and f"is a symbolic link to {tmp_path / 'nowhere'}, which does not exist" in err, err
    assert not (tmp_path / "nowhere").exists()


def test_overwrite_that_cannot_start_leaves_the_earlier_run(data, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(capsys, *data, "--output-dir", out)[0] == 0
    before = snapshot(out)
    status, err = run_cli(capsys, *data, "--output-dir", out, "--overwrite", "--batch-size", "1000")
    assert status == 2 and "more than the 250 training examples" in err
    assert snapshot(out) == before


def test_a_folder_in_use_by_another_run_is_refused(data, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    with FileLock(out / ".sda.lock", timeout=0):  # what a running sda holds
        status, err = run_cli(capsys, *data, "--output-dir", out)
    assert status == 2 and "in use by another sda run" in err
    assert not (out / "results.json").exists()
    assert run_cli(capsys, *data, "--output-dir", out)[0] == 0  # free again once the other has ended


def test_a_refused_run_leaves_no_folder_or_lock_behind(data, tmp_path, capsys):
    out = tmp_path / "new" / "out"
    status, err = run_cli(capsys, *data, "--output-dir", out, "--batch-size", "1000")
    assert status == 2 and "more than the 250 training examples" in err
    assert not (tmp_path / "new").exists()  # both folders it made are gone
    status, _ = run_cli(capsys, "--resume", out)
    assert status == 2 and not out.parent.exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    assert run_cli(capsys, *data, "--output-dir", mine, "--batch-size", "1000")[0] == 2
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]  # the user's folder stays, as it was


@pytest.mark.parametrize("where", ["file", "below a file"])
def test_an_output_dir_that_cannot_be_a_folder(where, data, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    out = blocker if where == "file" else blocker / "out"
    assert run_cli(capsys, *data, "--output-dir", out)[0] == 2
    assert blocker.read_text() == "x"


def test_a_full_disk_is_one_line(data, tmp_path, capsys, monkeypatch):
    import errno

    import sda.run

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "results.json"))
    monkeypatch.setattr(sda.run, "write_json", full)
    status, err = run_cli(capsys, *data, "--output-dir", tmp_path / "out")
    assert status == 2 and "No space left on device" in err


# --- resuming ---

def other_data(tmp_path):
    """The tiny dataset with other images: same shapes, other content."""
    folder = tmp_path / "other"
    folder.mkdir()
    for key, (x, y) in (("train", synthetic_digits(300, seed=11)), ("test", synthetic_digits(100, seed=12))):
        write_idx(folder / MNIST_FILES[f"{key}_images"], x)
        write_idx(folder / MNIST_FILES[f"{key}_labels"], y)
    return folder


def stopped_run(data, tmp_path, capsys):
    """A finished one-epoch run whose results.json is gone: a resume reads its checkpoint and ends."""
    out = tmp_path / "out"
    assert run_cli(capsys, *data, "--output-dir", out, "--training-epochs", "1")[0] == 0
    (out / "results.json").unlink()
    return out


def test_resume_refuses_other_data_and_contradicting_settings(data, tmp_path, capsys):
    out = stopped_run(data, tmp_path, capsys)
    before = snapshot(out)
    for flags, message in ((["--data-dir", other_data(tmp_path)], "other data"),
                           (["--valid-size", "60"], "other data"),
                           (["--hidden-layers", "9", "7"], "--hidden-layers (checkpoint: [12, 8], given: [9, 7])"),
                           (["--finetune-lr", "0.3"], "--finetune-lr"),
                           (["--corruption", "0.3", "0.3"], "--corruption")):
        status = main(["--resume", str(out), "--quiet", "--no-pictures", *map(str, flags)])
        err = capsys.readouterr().err
        assert status == 2 and message in err and len(err.strip().splitlines()) == 1, (flags, err)
    assert snapshot(out) == before


def test_resume_reuses_the_checkpoints_data_and_configuration(data, tmp_path, capsys):
    out = stopped_run(data, tmp_path, capsys)
    # no data flags: the checkpoint knows the folder, the validation size and --no-verify
    assert main(["--resume", str(out), "--quiet", "--no-pictures", "--training-epochs", "5"]) == 2  # differs
    capsys.readouterr()
    assert main(["--resume", str(out), "--quiet", "--no-pictures", "--mode", CPU_MODE]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["training_epochs"] == 1 and results["data"]["valid_size"] == 50


@pytest.mark.parametrize("forge, message", [
    (lambda h, a: a.update(state_0=a["state_0"][:-1]), "has shape"),
    (lambda h, a: h.pop("pretrain"), "KeyError"),
    (lambda h, a: h.update(rngs=[{"bit_generator": "PCG64", "state": "x"}] * len(h["rngs"])), "noise generator"),
    (lambda h, a: h.update(n_state=10 ** 12), "n_state"),
    (lambda h, a: h.update(config=[1, 2]), "config"),
    (lambda h, a: a.update(state_0=np.full_like(a["state_0"], np.nan)), "not finite"),
    (lambda h, a: h["pretrain"].update(seconds=[]), "pretraining progress"),
    (lambda h, a: h["fit"].update(history="abc"), "wrong kind"),
    (lambda h, a: h["fit"].update(epoch="x"), "integers"),
    (lambda h, a: [a.pop(k) for k in [k for k in a if k.startswith("best_")]], "best parameters"),
    (lambda h, a: a.update(best_0=a["best_0"].T.copy()), "best parameters"),
    (lambda h, a: a.update({f"state_{h['n_state'] - 1}": np.array(-0.1, np.float32)}), "learning rate of -0.1"),
    (lambda h, a: h["rngs"][0]["state"].update(inc=2 ** 200), "noise generator"),
    (lambda h, a: h.update(execution=["JAX"]), "execution"),
    (lambda h, a: h["rngs"][0]["state"].update(state=12345), "noise generator"),
    (lambda h, a: h["rngs"][0]["state"].update(inc=True), "noise generator"),
    (lambda h, a: h.update(data_source=[1]), "data_source"),
    (lambda h, a: h.update(data_source={"data_dir": 7}), "data_source"),
    (lambda h, a: h["pretrain"].update(epoch_seconds={"a": 1}), "epoch_seconds"),
    (lambda h, a: h["fit"].update(history=[{}, {}]), "fit.history"),
    (lambda h, a: h["fit"].update(history=[]), "fit.history"),
    (lambda h, a: h["fit"]["history"][0].update(time=1.5), "fit.history"),
    (lambda h, a: h["pretrain"].update(epoch_times=[["2026-12-03T14:58:20.123+00:00"]]), "epoch_times"),
    (lambda h, a: h["fit"].update(extra=1), "fit must be"),
    (lambda h, a: h.update(data=[1]), "fingerprint"),
    (lambda h, a: h["execution"].update(mode=["JAX"]), "execution"),
    (lambda h, a: a.update(state_0=np.full_like(a["state_0"], 1e30)), "beyond the 1e+06"),
    (lambda h, a: a.update(best_0=np.full_like(a["best_0"], -2e6)), "beyond the 1e+06"),
    (lambda h, a: a.update({f"state_{h['n_state'] - 1}": np.array(0.5, np.float32)}), "schedule gives 0.2"),
    (lambda h, a: h["config"].update(finetune_lr=0.5), "schedule gives 0.5"),
    (lambda h, a: a.update(state_0=a["state_0"].astype(np.float16)), "dtype 'F16', expected F32 or F64"),
    (lambda h, a: a.update(state_0=np.full_like(a["state_0"], np.inf)), "array 0 is not finite"),
    (lambda h, a: a.update(state_99=np.zeros(2, np.float32)), "do not fit n_state"),
    (lambda h, a: h["execution"].update(steps_per_call=0), "execution"),
    (lambda h, a: h["pretrain"].update(costs=[*h["pretrain"]["costs"], [1.0]], seconds=[*h["pretrain"]["seconds"], 1.0],
                                       epoch_seconds=[*h["pretrain"]["epoch_seconds"], [1.0]],
                                       epoch_times=[*h["pretrain"]["epoch_times"], ["2026-01-01T00:00:00+00:00"]]), "progress for 3 layers"),
    (lambda h, a: h["config"].update(training_epochs=10 ** 400), "training_epochs must be at most 2,147,483,647"),
    (lambda h, a: h["config"].update(finetune_lr=float("inf")), "finetune_lr must be a finite number > 0, got inf"),
    (lambda h, a: h["config"].update(pretrain_lr=1e39), "pretrain_lr must be at most 3.403e+38"),
    (lambda h, a: h["config"].update(hidden_layer_sizes=[10 ** 30, 8]), "must be at most 2,147,483,647"),
    (lambda h, a: h["config"].update(patience_epochs=True), "patience_epochs must be a number, got True"),
    (lambda h, a: h["config"].update(finetune_momentum=0.99999999), "which is 1 as a float32"),
    (lambda h, a: h["config"].update(corruption_type="gaussian", corruption_levels=[1.0, 3e38]), "at most 1e+30"),
])
def test_a_damaged_checkpoint_is_one_line(forge, message, data, tmp_path, capsys):
    """Forgeries that also recompute the digest, as a forger who knows the format would: each
    field's own check refuses them."""
    out = stopped_run(data, tmp_path, capsys)
    forge_checkpoint(out / "checkpoint.safetensors", forge)
    status = main(["--resume", str(out), "--quiet", "--no-pictures"])
    err = capsys.readouterr().err
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (out / "results.json").exists()  # refused before anything trained


@pytest.mark.parametrize("forge, message", [
    (lambda h, a: h["config"].pop("finetune_momentum"), r"lacks \['finetune_momentum'\]"),
    (lambda h, a: h["pretrain"].update(epoch_times=[["yesterday"]] * len(h["pretrain"]["costs"])), "epoch_times"),
    (lambda h, a: h["fit"]["history"][0].update(time="{not a time"), "fit.history"),
    (lambda h, a: h["fit"].update(epoch=3, history=[dict(h["fit"]["history"][0], epoch=k) for k in (1, 2, 3)]),
     "progress for 3 fine-tuning epochs does not fit this run of 1"),
    (lambda h, a: h.update(format_version=4.0), "format version 4.0 is not supported"),
    (lambda h, a: a.update(state_0=a["state_0"].astype(np.float64) + 1e-12), "is float64, this run's is float32"),
])
def test_a_sealed_checkpoint_that_is_not_its_run_is_refused(forge, message, data, tmp_path, capsys):
    """A missing configuration key would take its default, a time that is none, more epochs than
    the run has or a float64 state cast to float32 would not continue the run that wrote it."""
    out = stopped_run(data, tmp_path, capsys)
    forge_checkpoint(out / "checkpoint.safetensors", forge)
    status = main(["--resume", str(out), "--quiet", "--no-pictures"])
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert __import__("re").search(message, err), err
    assert not (out / "results.json").exists()


def forge_checkpoint(path, forge, seal=True):
    """Apply ``forge(header, arrays)`` to the checkpoint at ``path``; ``seal``: with a digest that fits."""
    header, arrays = read_tensor_file(path, "sda-checkpoint", version=CHECKPOINT_VERSION)
    forge(header, arrays)
    if seal:
        header["digest"] = checkpoint_digest(header, arrays)
    write_tensor_file(path, header, arrays)


@pytest.mark.parametrize("forge", [
    lambda h, a: h["config"].update(finetune_lr=0.5),
    lambda h, a: h["config"].update(training_epochs=3),
    lambda h, a: h["fit"].update(best_loss=0.0),
    lambda h, a: a.update(state_0=a["state_0"] * 2),
    lambda h, a: h.pop("digest"),
])
def test_a_checkpoint_edited_after_it_was_written_is_refused(forge, data, tmp_path, capsys):
    out = stopped_run(data, tmp_path, capsys)
    forge_checkpoint(out / "checkpoint.safetensors", forge, seal=False)
    status = main(["--resume", str(out), "--quiet", "--no-pictures"])
    err = capsys.readouterr().err
    assert status == 2 and ("changed after it was written" in err or "digest" in err), err
    assert len(err.strip().splitlines()) == 1 and not (out / "results.json").exists()


def test_a_checkpoint_without_its_epochs_end_times_is_refused_in_one_line(data, tmp_path, capsys):
    """Every epoch's end time is part of a checkpoint (metrics.jsonl is rebuilt from it on resume)."""
    def untimed(header, arrays):
        del header["pretrain"]["epoch_times"]

    out = stopped_run(data, tmp_path, capsys)
    forge_checkpoint(out / "checkpoint.safetensors", untimed)
    status = main(["--resume", str(out), "--quiet", "--no-pictures", "--mode", CPU_MODE])
    err = capsys.readouterr().err
    assert status == 2 and "damaged or incomplete checkpoint" in err and len(err.strip().splitlines()) == 1, err


def test_a_checkpoint_of_the_earlier_format_is_refused_in_one_line(data, tmp_path, capsys):
    out = stopped_run(data, tmp_path, capsys)
    forge_checkpoint(out / "checkpoint.safetensors", lambda h, a: (h.update(format_version=3), h.pop("digest")),
                     seal=False)
    status = main(["--resume", str(out), "--quiet", "--no-pictures"])
    err = capsys.readouterr().err
    assert status == 2 and "format version 3 is not supported" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flags", [["--finetune-lr-schedule", "linear"], ["--finetune-lr-decay", "1e-30"],
                                   ["--finetune-lr-decay", "1e-300"]])  # a float64 factor: never stored in float32
def test_a_learning_rate_of_zero_on_schedule_resumes(flags, data, tmp_path, capsys):
    """A linear schedule reaches 0 at its last epoch; a tiny decay underflows to 0: both are states
    of a real run, which a resume continues (here: ends, as its results were lost; 0.1 × 1e-30² is 0 in float32)."""
    out = tmp_path / "out"
    assert run_cli(capsys, *data, "--output-dir", out, "--training-epochs", "2", *flags)[0] == 0
    assert float(load_checkpoint(out / "checkpoint.safetensors").state[-1]) == 0.0
    (out / "results.json").unlink()
    assert main(["--resume", str(out), "--quiet", "--no-pictures"]) == 0, capsys.readouterr().err
    assert json.loads((out / "results.json").read_text())["finetuning"]["epochs"] == 2


def test_resume_names_a_flag_that_sets_two_values_once(data, tmp_path, capsys):
    out = stopped_run(data, tmp_path, capsys)
    status = main(["--resume", str(out), "--quiet", "--no-pictures", "--batch-size", "20"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("--batch-size") == 1, err


def test_the_python_api_refuses_what_the_command_line_refuses(tmp_path):
    x, y = synthetic_digits(120, seed=3)
    x = x.reshape(120, -1) / 255.0
    sets = [(x[:80], y[:80].astype(np.int32)), (x[80:], y[80:].astype(np.int32)), None]
    run = dict(mode=CPU_MODE, progress=False, log=None, hidden_layer_sizes=[6], corruption_levels=[0.1],
               pretraining_epochs=1, training_epochs=1, pretrain_batch_size=10, finetune_batch_size=10)
    bad_pixels = [(x[:80] * 2, sets[0][1]), sets[1], None]
    with pytest.raises(ValueError, match="train images must hold values in"):
        train_SdA(bad_pixels, **run)
    bad_labels = [(sets[0][0], sets[0][1] + 10), sets[1], None]
    with pytest.raises(ValueError, match=r"train labels must be in 0 \.\. 9"):
        train_SdA(bad_labels, **run)
    train_SdA(sets, output_dir=tmp_path / "a", **run)
    with pytest.raises(RunError, match="already holds a run"):
        train_SdA(sets, output_dir=tmp_path / "a", **run)
    with pytest.raises(RunError, match="other data"):
        train_SdA([(x[:80][::-1].copy(), sets[0][1]), sets[1], None], output_dir=tmp_path / "a", resume=True, **run)


# --- impossible values and exploding training ---

@pytest.mark.parametrize("flags, message", [
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--seed", "4294967296"], "--seed must be below 2**32"),
    (["--finetune-lr", "-inf"], "--finetune-lr must be a finite number > 0, got -inf"),
    (["--finetune-lr-decay", "1e10"], "--finetune-lr-decay must be in (0, 1]"),
    (["--hidden-layers", "1000000000", "10"], "GiB"),
    (["--optimizer", "lbfgs", "--finetune-momentum", "0", "--lbfgs-memory", "2000000000"], "GiB"),  # its corrections
    (["--finetune-momentum", "1"], "--finetune-momentum must be in [0, 1)"),
])
def test_impossible_values_are_one_line(flags, message, data, tmp_path, capsys):
    status, err = run_cli(capsys, *data, "--output-dir", tmp_path / "out", *flags)
    assert status == 2 and message in err, err


HUGE = str(10 ** 400)  # beyond float64: float() of it raises OverflowError


@pytest.mark.parametrize("flags, message", [
    (["--finetune-lr", "1e39"], "--finetune-lr must be at most 3.403e+38 in size, the largest float32"),
    (["--pretrain-lr", "1e39"], "--pretrain-lr must be at most 3.403e+38"),
    (["--corruption-type", "gaussian", "--corruption", "0.1", "1e308"], "--corruption must be at most 1e+30"),
    (["--finetune-lr", "1e-50"], "--finetune-lr = 1e-50 is 0 as a float32"),
    (["--training-epochs", HUGE], "--training-epochs must be at most 2,147,483,647, got an integer of about 10**400"),
    (["--hidden-layers", HUGE, "8"], "--hidden-layers[0] must be at most 2,147,483,647"),
    (["--n-outs", HUGE], "--n-outs must be at most 2,147,483,647"),
    (["--pretraining-epochs", HUGE], "--pretraining-epochs must be at most"),
    (["--batch-size", HUGE], "must be at most 2,147,483,647"),
    (["--patience-epochs", "1e308"], "--patience-epochs must be at most 2,147,483,647, got 1e+308"),
    (["--patience-epochs", HUGE], "--patience-epochs must be a finite number > 0, got inf"),
    (["--finetune-weight-decay", "1e-60"], "is 0 as a float32"),
    (["--seed", HUGE], "--seed must be below 2**32"),
    (["--pretrain-batch-size", "5"], "give --batch-size (both batch sizes) or --pretrain-batch-size, not both"),
    # below 1 as given, 1 once stored in float32: every input masked, momentum without damping, all dropped
    (["--corruption", "0.99999999"], "--corruption must be in [0, 1), got 0.99999999, which is 1 as a float32"),
    (["--finetune-momentum", "0.99999999"], "--finetune-momentum must be in [0, 1), got 0.99999999, which is 1"),
    (["--finetune-dropout-input", "0.99999999"], "--finetune-dropout-input must be in [0, 1), got 0.99999999"),
    (["--finetune-dropout-hidden", "0.99999999"], "--finetune-dropout-hidden must be in [0, 1), got 0.99999999"),
    (["--finetune-corruption", "0.99999999"], "--finetune-corruption must be in [0, 1), got 0.99999999"),
    (["--criteria", "sparse", "--sparsity-target", "0.99999999"], "--sparsity-target must be in (0, 1), got 0.99"),
    # Gaussian noise whose draws overflow float32 (a NaN cost that is no learning rate's fault)
    (["--corruption-type", "gaussian", "--corruption", "3e38"], "--corruption must be at most 1e+30"),
    (["--corruption-type", "gaussian", "--corruption", "1", "--finetune-corruption", "3e38"],
     "--finetune-corruption must be at most 1e+30"),
])
def test_numbers_are_checked_as_numbers_before_the_folder_is_claimed(flags, message, data, tmp_path, capsys):
    status, err = run_cli(capsys, *data, "--output-dir", tmp_path / "out", *flags)
    assert status == 2 and message in err, err
    assert not (tmp_path / "out").exists()


def test_a_non_finite_state_is_never_checkpointed(data, tmp_path, capsys):
    from sda.checkpoint import save_checkpoint
    from sda.training import DivergenceError, PretrainResult
    import pytensor
    lr = pytensor.shared(np.float32(np.inf), name="finetune_lr")
    with pytest.raises(DivergenceError, match="finetune_lr is not finite"):
        save_checkpoint(tmp_path / "checkpoint.safetensors", {}, [lr], [], PretrainResult())
    assert not (tmp_path / "checkpoint.safetensors").exists()


@pytest.mark.parametrize("flags, where", [
    (["--pretrain-lr", "1e6"], "pretraining layer 0, epoch 1"),
    (["--finetune-lr", "1e6"], "fine-tuning, epoch 1"),
])
def test_exploding_training_stops_and_keeps_only_finite_state(flags, where, data, tmp_path, capsys):
    out = tmp_path / "out"
    status = main([*FAST, *map(str, data), "--output-dir", str(out), *flags])
    err = capsys.readouterr().err
    assert status == 1 and "diverged" in err and where in err and len(err.strip().splitlines()) == 1, err
    assert not (out / "results.json").exists()
    if (out / "checkpoint.safetensors").exists():
        assert all(np.isfinite(a).all() and np.abs(a).max() <= 1e6 for a in load_checkpoint(out / "checkpoint.safetensors").state)
        assert "kept in" in err
    else:
        assert "nothing was saved" in err


@pytest.mark.filterwarnings("error::RuntimeWarning")  # numpy's overflow warnings would be more lines
def test_a_rate_near_the_float32_limit_diverges_in_one_line_in_every_mode(data, tmp_path, capsys):
    status = main([*FAST, *map(str, data), "--output-dir", str(tmp_path / "o"), "--finetune-lr", "3.4e38",
                   "--pretraining-epochs", "0", "--mode", "FAST_COMPILE"])  # graphs that run in Python too
    err = capsys.readouterr().err
    assert status == 1 and "diverged" in err and len(err.strip().splitlines()) == 1, err


def test_divergence_before_any_checkpoint_says_nothing_was_saved(data, tmp_path, capsys):
    status = main([*FAST, *map(str, data), "--output-dir", str(tmp_path / "o"), "--finetune-lr", "1e30",
                   "--pretraining-epochs", "0"])
    err = capsys.readouterr().err
    assert status == 1 and "nothing was saved" in err and "learning rate 1e+30" in err


def test_evaluate_refuses_a_model_of_another_width(data, tmp_path, capsys):
    from sda.SdA import SdA
    model = SdA(np.random.RandomState(0), n_ins=400, hidden_layers_sizes=[5], n_outs=10, corruption_levels=[0.1])
    model.save(tmp_path / "m.safetensors")
    status = main(["--evaluate", str(tmp_path / "m.safetensors"), *map(str, data), "--no-verify", "--valid-size", "50"])
    err = capsys.readouterr().err
    assert status == 2 and "takes 400 inputs" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("key, value", [("n_outs", float("inf")), ("n_ins", 10 ** 400),
                                        ("hidden_layers_sizes", [float("-inf")]), ("n_outs", 1e300)])
def test_evaluate_refuses_a_header_whose_sizes_are_not_counts(key, value, data, tmp_path, capsys):
    from sda.SdA import SdA
    model = SdA(np.random.RandomState(0), n_ins=64, hidden_layers_sizes=[5], n_outs=10, corruption_levels=[0.1])
    header, arrays = read_tensor_file(model.save(tmp_path / "m.safetensors"), "sda-model")
    header["config"][key] = value
    write_tensor_file(tmp_path / "m.safetensors", header, arrays)
    status = main(["--evaluate", str(tmp_path / "m.safetensors"), *map(str, data), "--no-verify"])
    err = capsys.readouterr().err
    assert status == 2 and "configuration is invalid" in err and len(err.strip().splitlines()) == 1, err


def test_an_overwrite_that_cannot_remove_a_file_leaves_the_earlier_run_whole(data, tmp_path, capsys, monkeypatch):
    from pathlib import Path
    out = tmp_path / "out"
    assert run_cli(capsys, *data, "--output-dir", out)[0] == 0
    before = snapshot(out)
    rename = Path.rename

    def refuse_results(self, target):  # as a file marked immutable (chattr +i) would
        if self.name == "results.json":
            raise PermissionError(1, "Operation not permitted")
        return rename(self, target)
    monkeypatch.setattr(Path, "rename", refuse_results)
    status, err = run_cli(capsys, *data, "--output-dir", out, "--overwrite")
    assert status == 2 and "cannot replace the earlier run" in err and "results.json" in err
    assert snapshot(out) == before


def test_a_validation_size_of_zero_keeps_the_last_model_or_is_refused_as_given(data, tmp_path, capsys):
    # no validation set: nothing can choose the best model, so only the last one may be kept
    status, err = run_cli(capsys, *data, "--output-dir", tmp_path / "out", "--valid-size", "0")
    assert status == 2 and "set --keep-model last" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out" / "checkpoint.safetensors").exists()
    assert run_cli(capsys, *data, "--output-dir", tmp_path / "last", "--valid-size", "0", "--keep-model", "last")[0] == 0


@pytest.mark.parametrize("flags, message", [(["--mode", "JAXX"], "invalid choice: 'JAXX'"),
                                            (["--seed", "abc"], "invalid int value")])
def test_flags_argparse_refuses_are_one_line(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(flags)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and message in err and len(err.splitlines()) == 1, err


def test_divergence_messages_say_truly_what_was_kept(data, tmp_path, capsys):
    out = tmp_path / "out"
    status = main([*FAST, *map(str, data), "--output-dir", str(out), "--finetune-lr", "1e30"])
    err = capsys.readouterr().err
    assert status == 1 and "checkpoint.safetensors is kept in" in err and "as of the last epoch saved" in err  # pretraining's
    assert not (out / "best_model.safetensors").exists() and "best_model" not in err


def test_evaluate_needs_no_validation_size(data, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(capsys, *data, "--output-dir", out)[0] == 0
    capsys.readouterr()
    assert main(["--evaluate", str(out / "best_model.safetensors"), *map(str, data), "--no-verify"]) == 0
    assert "test error" in capsys.readouterr().out


def test_resume_keeps_the_mode_the_run_started_in(data, tmp_path, capsys):
    out = stopped_run(data, tmp_path, capsys)
    assert main(["--resume", str(out), "--quiet", "--no-pictures"]) == 0
    assert json.loads((out / "results.json").read_text())["mode"] == CPU_MODE


def test_resume_in_python_needs_the_output_dir():
    with pytest.raises(ValueError, match="resume=True needs the output_dir"):
        train_SdA([None, None, None], resume=True)


@pytest.mark.parametrize("flags, message", [("floatX=float99", "Invalid value ('float99')"),
                                            ("base_compiledir={blocker}/x", "compiledir"),
                                            ("compiledir={blocker}/x", "compiledir")])
def test_an_environment_pytensor_cannot_start_in_is_one_line(flags, message, tmp_path):
    import os
    import subprocess
    import sys
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    env = {**os.environ, "PYTENSOR_FLAGS": f"blas__ldflags=,{flags.format(blocker=blocker)}"}
    done = subprocess.run([sys.executable, "-m", "sda.SdA", "--quiet", "--output-dir", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=120)
    err = done.stderr.strip()
    assert done.returncode == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command, prog", [
    (["-m", "sda.sweep", "--config", "smoke", "--output-dir", "{out}"], "sda-sweep"),
    (["-m", "sda.ablation", "--collect", "--output-dir", "{out}"], "sda-ablation"),
    (["-m", "sda.dA", "--epochs", "1"], "sda"),
    (["-m", "sda.mlp", "--epochs", "1"], "sda"),
    (["-m", "sda.logistic_sgd", "--epochs", "1"], "sda"),
    (["-m", "sda.tutorial_scripts", "mlp", "--epochs", "1"], "sda"),
    (["-c", "import sys; from sda.launch import sweep_main; sys.exit(sweep_main(['--config', 'smoke', "
            "'--output-dir', '{out}']))"], "sda-sweep"),
    (["-c", "import sys; from sda.launch import ablation_main; sys.exit(ablation_main(['--collect', "
            "'--output-dir', '{out}']))"], "sda-ablation")])
@pytest.mark.parametrize("flags", ["floatX=float99", "compiledir={blocker}/x"])
def test_every_command_says_in_one_line_that_pytensor_cannot_start(command, prog, flags, tmp_path):
    import os
    import subprocess
    import sys
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    env = {**os.environ, "PYTENSOR_FLAGS": f"blas__ldflags=,{flags.format(blocker=blocker)}"}
    done = subprocess.run([sys.executable, *[part.format(out=tmp_path / "out") for part in command]],
                          capture_output=True, text=True, env=env, timeout=120)
    err = done.stderr.strip()
    assert done.returncode == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"{prog}: error: PyTensor cannot start"), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("script, flags, message", [
    ("dA", ["--corruption", "5"], "--corruption must be in [0, 1), got 5.0"),
    ("dA", ["--corruption", "0.3", "nan"], "--corruption must be in [0, 1), got nan"),
    ("dA", ["--corruption", "0.3", "1"], "--corruption must be in [0, 1), got 1.0"),
    ("dA", ["--learning-rate", "1e39"], "--learning-rate must be at most 3.403e+38"),
    ("dA", ["--n-hidden", HUGE], "--n-hidden must be at most 2,147,483,647"),
    ("dA", ["--seed", "-1"], "--seed must be >= 0"),
    ("mlp", ["--l2", "inf"], "--l2 must be a finite number >= 0, got inf"),
    ("mlp", ["--l1", "-1e-3"], "--l1 must be a finite number >= 0"),
    ("mlp", ["--epochs", HUGE], "--epochs must be at most 2,147,483,647"),
    ("logistic_sgd", ["--learning-rate", "1e-50"], "--learning-rate = 1e-50 is 0 as a float32"),
    ("logistic_sgd", ["--valid-size", "0"], "--valid-size must be >= 1"),
])
def test_tutorial_scripts_check_numbers_as_the_rest_before_training(script, flags, message, data, tmp_path, capsys):
    from sda.tutorial_scripts import main as script_main
    folder = ["--output-folder", str(tmp_path / "dA")] if script == "dA" else []
    status = script_main(script, [*map(str, data), "--no-verify", "--valid-size", "50", "--epochs", "1", "--quiet", *folder,
                                  *flags])
    err = capsys.readouterr().err.strip()
    assert status == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "dA").exists()
