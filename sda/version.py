"""The version of sda (read by setup.py)."""

__version__ = "0.3.1"
