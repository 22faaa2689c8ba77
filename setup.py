"""The project's metadata is in pyproject.toml; this file adds one step to building it.

The wheel carries the files sda ships beside its code (MNIST in ``data/mnist``, the sweep files
in ``sweeps/``) inside the package, as ``sda/shipped/<name>`` (see :mod:`sda.resources`), so that
an installed sda trains on MNIST from any folder.  An editable install (``pip install -e .``)
reads them from the checkout and copies nothing.

Install with ``pip install -e .`` (add ``[jax,dev]`` for the JAX backend and the tests).
"""

import runpy
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

# a name, and its folder in the checkout (read from the file alone: importing sda needs its dependencies)
SHIPPED = runpy.run_path(str(Path(__file__).parent / "sda" / "resources.py"))["SHIPPED"]


class BuildWithShippedFiles(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        for name, folder in SHIPPED.items():
            shutil.copytree(folder, Path(self.build_lib) / "sda" / "shipped" / name, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithShippedFiles})
