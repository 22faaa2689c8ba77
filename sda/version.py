"""The version of sda (read by pyproject.toml's build)."""

__version__ = "0.4.0"
