"""CSV files of one's own on the command line, rows shuffled before the split, features scaled as
the model was trained, classes counted from the labels, and pictures only of images."""

import json

import numpy as np
import pytest
import safetensors.numpy

from conftest import synthetic_digits, write_idx
from support import CPU_MODE
from sda.cli import main
from sda.data import MNIST_FILES
from sda.persistence import ModelFileError, load_model, load_model_and_scaler

TINY = ["--hidden-layers", "8", "--corruption", "0.1", "--pretraining-epochs", "1", "--training-epochs", "4",
        "--finetune-lr", "0.3", "--batch-size", "10", "--mode", CPU_MODE, "--quiet"]
CENTRES = np.array([[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 1.0]])


def blobs(n_per_class: int, seed: int, scale: float = 1000.0):
    """Three well-separated classes in 4 features far above [0, 1] (clipped there, all would be 1), sorted by class."""
    rng = np.random.RandomState(seed)
    y = np.repeat(np.arange(3), n_per_class)
    x = (CENTRES[y] + rng.normal(0, 0.1, size=(len(y), 4))) * scale + 2 * scale
    return x, y


def write_csv(path, x, y, names=("a", "b", "c", "d", "label")):
    rows = [",".join(names)] + [",".join([*(f"{v:.6g}" for v in row), str(label)]) for row, label in zip(x, y)]
    path.write_text("\n".join(rows) + "\n")
    return path


def results_of(out):
    return json.loads((out / "results.json").read_text())


def test_a_class_sorted_csv_trains_once_shuffled_and_evaluates_scaled(tmp_path, capsys):
    train = write_csv(tmp_path / "train.csv", *blobs(100, seed=0))
    out = tmp_path / "out"
    loud = [flag for flag in TINY if flag != "--quiet"]  # the console's note on the pictures
    # without the shuffle the last 100 rows, class 2 alone, would validate a model that never saw it
    assert main([*loud, "--valid-size", "100", "--data", str(train), "--output-dir", str(out)]) == 0
    results = results_of(out)
    assert results["data"]["shuffle"] is True and results["data"]["scaled"] is True
    assert results["config"]["n_outs"] == 3  # from the labels 0, 1, 2
    assert results["finetuning"]["best_validation_error"] < 0.1
    # not images: the learning curves only, said once
    assert sorted(p.name for p in out.glob("*.png")) == ["learning_curves.png"]
    assert capsys.readouterr().out.count("no filter or reconstruction pictures") == 1
    model, header, scaler = load_model_and_scaler(out / "best_model.safetensors")
    assert header["scaled"] and header["format_version"] == 3 and model.n_outs == 3 and scaler.low.shape == (4,)
    # new rows in the same units as the training file: scaled by the saved scaler, not clipped to 1
    test = write_csv(tmp_path / "test.csv", *blobs(30, seed=1))
    assert main(["--evaluate", str(out / "best_model.safetensors"), "--data", str(test), "--mode", CPU_MODE]) == 0
    said = capsys.readouterr().out
    error = float(said.split("test error ")[1].split("%")[0]) / 100
    assert error < 0.1 and "on 90 examples" in said, said


def test_without_shuffling_a_class_sorted_file_validates_on_a_class_it_never_trained_on(tmp_path):
    train = write_csv(tmp_path / "train.csv", *blobs(100, seed=0))
    out = tmp_path / "out"
    assert main([*TINY, "--training-epochs", "1", "--no-pictures", "--no-shuffle", "--valid-size", "100",
                 "--data", str(train), "--output-dir", str(out)]) == 0
    results = results_of(out)
    assert results["data"]["shuffle"] is False
    assert results["finetuning"]["best_validation_error"] == 1.0  # the last 100 rows: class 2, never trained on


def test_the_label_column_is_chosen_by_name(tmp_path):
    x, y = blobs(20, seed=0)
    path = tmp_path / "first.csv"
    rows = ["kind,a,b,c,d"] + [",".join([str(label), *(f"{v:.6g}" for v in row)]) for row, label in zip(x, y)]
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    assert main([*TINY, "--training-epochs", "1", "--no-pictures", "--data", str(path), "--label-column", "kind",
                 "--output-dir", str(out)]) == 0
    assert load_model(out / "best_model.safetensors")[0].n_ins == 4 and results_of(out)["data"]["label_column"] == "kind"


def test_an_npz_file_outside_the_unit_interval_is_scaled_and_evaluated_alike(tmp_path, capsys):
    x, y = synthetic_digits(240, seed=1)
    x_test, y_test = synthetic_digits(60, seed=2)
    path = tmp_path / "wide.npz"
    np.savez(path, X=x.reshape(240, -1) * 1000.0 - 7, y=y, X_test=x_test.reshape(60, -1) * 1000.0 - 7, y_test=y_test)
    out = tmp_path / "out"
    assert main([*TINY, "--hidden-layers", "12", "--training-epochs", "3", "--no-pictures", "--data", str(path),
                 "--output-dir", str(out)]) == 0
    results = results_of(out)
    assert results["data"]["scaled"] is True and results["config"]["n_outs"] == 10
    capsys.readouterr()
    assert main(["--evaluate", str(out / "best_model.safetensors"), "--data", str(path), "--mode", CPU_MODE]) == 0
    assert f"test error {results['finetuning']['test_error']:.2%} on 60 examples" in capsys.readouterr().out


def test_n_outs_of_mnist_files_is_counted_from_their_labels(tmp_path):
    for key, n in (("train", 120), ("test", 40)):
        images, labels = synthetic_digits(n, n_classes=4, seed=3)
        write_idx(tmp_path / MNIST_FILES[f"{key}_images"], images)
        write_idx(tmp_path / MNIST_FILES[f"{key}_labels"], labels)
    out = tmp_path / "out"
    assert main([*TINY, "--training-epochs", "1", "--no-pictures", "--data-dir", str(tmp_path), "--no-verify",
                 "--valid-size", "20", "--output-dir", str(out)]) == 0
    assert results_of(out)["config"]["n_outs"] == 4
    assert main([*TINY, "--training-epochs", "1", "--no-pictures", "--data-dir", str(tmp_path), "--no-verify",
                 "--valid-size", "20", "--n-outs", "6", "--output-dir", str(tmp_path / "given")]) == 0
    assert results_of(tmp_path / "given")["config"]["n_outs"] == 6


@pytest.mark.parametrize("text, flags, message", [
    ("a,b,label\n1,2,0\n3,x,1\n", [], "line 3, column 'b': 'x' is not a number"),
    ("a,b,label\n1,2,0\n3,1\n", [], "line 3 has 2 cells, the header 3 columns"),
    ("a,b,label\n1,2,0\n3,1,1,1\n", [], "line 3 has 4 cells, the header 3 columns"),
    ("", [], "empty file; expected a header row"),
    ("a,b,label\n", [], "has a header but no rows"),
    ("a,b,label\n1,2,0\n", [], "the data hold 1 example: a run needs at least 2"),
    ("a,b,label\n1,2,0\n", ["--label-column", "class"], "has no column 'class' for --label-column (its columns: 'a'"),
    ("a,b,label\n1,2,0\n3,4,1.5\n", [], "line 3, label column 'label': 1.5 is not a class label"),
    ("a,b,label\n1,2,0\n3,4,cat\n", [], "'cat' is not a number (the labels must be integers 0 .. k-1)"),
    ("a,b,label\n1,inf,0\n", [], "line 2, column 'b': inf is not a finite number"),
    ("1,2,0\n3,4,1\n", [], "the first line must be a header"),
    ("a,a,label\n" + "1,2,0\n3,4,1\n" * 10, [], "names column 'a' more than once"),
    ("a,b,label\n" + "1,2,0\n3,4,2\n" * 10, [], "the labels must be the integers 0 .. k-1, each present"),
    ("a,b,label\n" + "1,2,0\n3,4,1\n" * 10, ["--label-column", "a", "--no-shuffle"], "(missing: 0, 2)"),
])
def test_bad_csv_files_are_one_line_and_exit_2(text, flags, message, tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    assert main([*TINY, "--data", str(path), *flags, "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_a_model_file_of_format_version_2_is_refused_naming_it(tmp_path, capsys):
    train = write_csv(tmp_path / "train.csv", *blobs(20, seed=0))
    out = tmp_path / "out"
    assert main([*TINY, "--training-epochs", "1", "--no-pictures", "--data", str(train), "--output-dir", str(out)]) == 0
    with safetensors.safe_open(out / "best_model.safetensors", framework="numpy") as f:
        tensors, header = {name: f.get_tensor(name) for name in f.keys()}, json.loads(f.metadata()["sda"])
    header["format_version"] = 2
    old = tmp_path / "old.safetensors"
    old.write_bytes(safetensors.numpy.save(tensors, metadata={"sda": json.dumps(header)}))
    with pytest.raises(ModelFileError, match="format version 2 is not supported"):
        load_model(old)
    capsys.readouterr()
    assert main(["--evaluate", str(old), "--data", str(train), "--mode", CPU_MODE]) == 2
    err = capsys.readouterr().err.strip()
    assert "format version 2 is not supported (this sda reads version 3)" in err and len(err.splitlines()) == 1
