"""The documentation's extension (docs/_ext/sda_docs.py): the README sections the guide includes
exist, come out whole and link to the right pages; the hyperparameter table describes every value.
The site itself is built by CI (`.ci/run`), with warnings as errors."""

import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx")

DOCS = Path(__file__).resolve().parents[1] / "docs"
sys.path.insert(0, str(DOCS / "_ext"))
import sda_docs  # noqa: E402

from sda.hyperparameters import HYPERPARAMETERS  # noqa: E402

README = """# Title

intro, see [the results](docs/RESULTS.md#gpu)

## First

text [own](#second-part)

```bash
# not a heading
```

### Sub

more

## Second part

last
"""


def test_a_section_runs_to_the_next_heading_of_its_level_with_its_headings_moved():
    text = sda_docs.readme_section("First", 1, "guide/first", text=README)
    assert text.startswith("(first)=\n# First\n")
    assert "# not a heading" in text and "(sub)=\n## Sub\n" in text and "more" in text
    assert "Second part" not in text.replace("#second-part", "")


def test_the_title_stands_for_the_introduction_and_links_into_docs_follow_the_page():
    assert sda_docs.readme_section("Title", 1, "index", text=README) == (
        "(title)=\n# Title\n\nintro, see [the results](RESULTS.md#gpu)\n")
    deeper = sda_docs.readme_section("Title", 1, "guide/x", text=README)
    assert "](../RESULTS.md#gpu)" in deeper
    assert sda_docs.readme_section("Second part", 2, "guide/x", text=README).startswith("(second-part)=\n## Second")


def test_an_unknown_or_ambiguous_heading_is_refused():
    with pytest.raises(ValueError, match="0 sections"):
        sda_docs.readme_section("Nothing", text=README)
    with pytest.raises(ValueError, match="2 sections"):
        sda_docs.readme_section("A", text="## A\n\n## A\n")


def test_every_section_the_docs_include_is_in_the_readme():
    for page in DOCS.rglob("*.md"):
        for heading in re.findall(r"^```\{readme-section\}[ \t]+(.+?)[ \t]*$", page.read_text(), re.MULTILINE):
            assert sda_docs.readme_section(heading, docname=str(page.relative_to(DOCS).with_suffix("")))


def test_the_github_anchor_of_a_heading():
    assert sda_docs.github_anchor("The UFLDL question: an ablation") == "the-ufldl-question-an-ablation"
    assert sda_docs.github_anchor("scikit-learn estimators and the notebook") == "scikit-learn-estimators-and-the-notebook"


def test_every_hyperparameter_has_its_values_in_words():
    words = {h.name: sda_docs.describe_values(h.values) for h in HYPERPARAMETERS}
    assert words["finetune_momentum"] == "number in [0, 1)"
    assert words["seed"] == f"integer in [0, {2 ** 32 - 1}]"
    assert words["corruption_type"] == "one of masking, salt_and_pepper, gaussian"
    assert "one per hidden layer (or one for all)" in words["corruption_levels"]
    assert all(words.values())
