"""The files sda ships beside its code: MNIST (``data/mnist``) and the sweep files (``sweeps/``).

A source checkout holds them at its top; a wheel carries them inside the package, as
``sda/shipped/mnist`` and ``sda/shipped/sweeps`` (setup.py copies them there when it builds),
so that an installed sda finds them from any folder.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SHIPPED", "shipped", "sweep_path", "shipped_sweeps"]

_PACKAGE = Path(__file__).resolve().parent

#: what ships, by name: its folder in a source checkout
SHIPPED = {"mnist": "data/mnist", "sweeps": "sweeps"}


def shipped(name: str) -> Path:
    """The folder of the shipped files called ``name`` (a key of :data:`SHIPPED`): inside the
    installed package if it is there, else in the source checkout around it."""
    installed = _PACKAGE / "shipped" / name
    return installed if installed.is_dir() else _PACKAGE.parent / SHIPPED[name]


def sweep_path(given: str | Path) -> Path:
    """``given`` as the path of a sweep's TOML file: a file that exists as given, or the name of
    a shipped sweep (``smoke`` or ``smoke.toml`` for ``sweeps/smoke.toml``)."""
    path = Path(given)
    if path.exists() or path.parent != Path("."):
        return path
    named = shipped("sweeps") / (path.name if path.suffix == ".toml" else f"{path.name}.toml")
    return named if named.is_file() else path


def shipped_sweeps() -> list[str]:
    """The names of the shipped sweeps."""
    return sorted(p.stem for p in shipped("sweeps").glob("*.toml"))
