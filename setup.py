"""The project's metadata is in pyproject.toml; this file lets older tools build it too.

Install with ``pip install -e .`` (add ``[jax,dev]`` for the JAX backend and the tests).
"""

from setuptools import setup

setup()
