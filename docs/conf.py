"""Sphinx configuration of sda's documentation.

Build it from the repository's root::

    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's sda, installed or not
sys.path.insert(0, str(Path(__file__).parent / "_ext"))

# the version without importing sda (and PyTensor) first
release = re.search(r'^__version__ = "([^"]+)"', (ROOT / "sda" / "version.py").read_text(), re.MULTILINE).group(1)
version = release

project = "sda"
author = "sda contributors"
copyright = "sda contributors"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_parser",
    "sda_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# Markdown: $...$ maths, ```{directive} blocks, heading anchors for [..](PAGE.md#anchor) links
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# the API: numpydoc docstrings, members in source order, the tutorial's classes with __init__'s parameters
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autoclass_content = "both"
autodoc_preserve_defaults = True  # DEFAULT_DATA_DIR, not the path of the machine that builds the docs
autodoc_typehints = "description"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True  # Attributes sections as fields, beside the attributes autodoc documents

# Links into Python's, numpy's and scikit-learn's docs need their inventories from the internet, which
# the build must not need: SDA_DOCS_INTERSPHINX=1 turns them on.
if os.environ.get("SDA_DOCS_INTERSPHINX") == "1":
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "sklearn": ("https://scikit-learn.org/stable", None),
    }

html_theme = "furo"
html_title = f"sda {release}"
html_static_path = ["_static"]
html_css_files = ["sda.css"]
