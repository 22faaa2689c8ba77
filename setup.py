"""Install with ``pip install -e .`` (add ``[jax,dev]`` for the JAX backend and the tests)."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "sda" / "version.py").read_text()).group(1)

setup(
    name="sda",
    version=VERSION,
    description="Stacked denoising autoencoders (the Deep Learning Tutorials' SdA) on PyTensor",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.11",
    packages=find_packages(include=["sda", "sda.*"]),
    install_requires=[
        "pytensor>=3.0.7",
        "numpy>=1.26",
        "scipy>=1.11",
        "tqdm>=4.66",
        "Pillow>=10",
        # the learning curves and the titled pictures: the README's first command must write them all
        "matplotlib>=3.8",
    ],
    extras_require={
        "jax": ["jax>=0.4.30"],
        "sklearn": ["scikit-learn>=1.6"],
        "plot": [],  # matplotlib is a core dependency now; the extra stays for old install commands
        # ipywidgets: progress bars drawn as widgets in notebooks
        "notebook": ["nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29", "ipywidgets>=8"],
        # --log-to tensorboard: tensorboardX writes event files without torch or tensorflow
        "tensorboard": ["tensorboardX>=2.6"],
        # --log-to mlflow: the full package, whose default local store (sqlite, ./mlflow.db) needs it
        "mlflow": ["mlflow>=3"],
        # a CPU build on the CI machine; a looser pin pulls a multi-GB CUDA build
        "bench": ["torch==2.13.0"],
        # sweeps: python -m sda.sweep
        "sweep": ["ray[tune]>=2.41"],
        "dev": ["pytest>=8", "hypothesis>=6.100", "scikit-learn>=1.6",
                "nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29", "ipywidgets>=8",
                "tensorboardX>=2.6", "mlflow>=3", "ray[tune]>=2.41"],
    },
    entry_points={"console_scripts": ["sda-train=sda.launch:main", "sda-sweep=sda.sweep:main",
                                      "sda-ablation=sda.ablation:main"]},
)
