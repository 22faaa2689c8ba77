"""The example notebook runs top to bottom (on a small subset, so that it cannot rot)."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("matplotlib")

NOTEBOOK = Path(__file__).parent.parent / "examples" / "sda_tour.ipynb"


def test_example_notebook_executes(monkeypatch):
    from sda.data import DEFAULT_DATA_DIR, MNIST_FILES, find_idx_file
    if any(find_idx_file(DEFAULT_DATA_DIR, name) is None for name in MNIST_FILES.values()):
        pytest.skip("data/mnist is not present")
    monkeypatch.setenv("SDA_NOTEBOOK_TRAIN", "1000")
    monkeypatch.setenv("SDA_NOTEBOOK_EPOCHS", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    # a clean notebook: no library warning (e.g. tqdm's "IProgress not found") on stderr
    assert not [o.text for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "best validation error" in text and "SdAClassifier test accuracy" in text
    # one's own arrays in, the features of each layer out
    assert "features of layer 0: (397, 100)" in text and "features of layer 1: (397, 50)" in text
    assert "a linear model on the features of layer 0: test accuracy" in text
    # the estimator on digits beside scikit-learn's baselines, on the same split
    assert "SdAClassifier on digits: test accuracy" in text
    assert "StandardScaler + LogisticRegression: test accuracy" in text
    assert "StandardScaler + MLPClassifier: test accuracy" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3  # filters, reconstructions, curves
