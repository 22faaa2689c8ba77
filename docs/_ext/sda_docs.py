"""Sphinx extension of sda's documentation: README sections, the hyperparameter table and the
command lines' ``--help``, all made at build time from their one source.

* A page holds the block::

      ```{readme-section} The script
      :level: 1
      ```

  and it is replaced, before the page is parsed, by that section of the README (its heading and
  everything down to the next heading of its level or above), the headings moved so that the
  section's own is at ``level`` (default 1), links into ``docs/`` made relative to the page and
  each heading given a label of its GitHub anchor, so that the README's ``[..](#your-own-data)``
  links find their section on whatever page it is.
* ``.. hyperparameter-table::`` renders :data:`sda.hyperparameters.HYPERPARAMETERS`.
* ``.. preset-table::`` renders :data:`sda.config.PRESETS` with their notes.
* ``.. command-help:: sda.cli:build_parser python -m sda.SdA`` renders the ``--help`` of the
  parser that ``build_parser(*arguments)`` returns (its arguments after the first, strings).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util.docutils import SphinxDirective

README = Path(__file__).resolve().parents[2] / "README.md"

_BLOCK = re.compile(r"^```\{readme-section\}[ \t]+(?P<heading>[^\n]+?)[ \t]*\n(?P<options>(?::[a-z-]+:[^\n]*\n)*)```[ \t]*$",
                    re.MULTILINE)
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def github_anchor(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as dashes."""
    text = re.sub(r"[`*_]", "", title).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _headings(lines: list[str]):
    """(line index, level, title) of every Markdown heading outside code fences."""
    fenced = False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (m := _HEADING.match(line)):
            yield i, len(m.group(1)), m.group(2)


def readme_section(heading: str, level: int = 1, docname: str = "index", text: str | None = None) -> str:
    """The README's section titled ``heading``, as Markdown for the page ``docname`` (a path under
    ``docs/`` without its suffix).  The README's title (level 1) stands for its introduction, down
    to the first heading below it."""
    lines = (README.read_text(encoding="utf-8") if text is None else text).splitlines()
    found = list(_headings(lines))
    starts = [(i, lev) for i, lev, title in found if title == heading]
    if len(starts) != 1:
        raise ValueError(f"README.md has {len(starts)} sections titled {heading!r}")
    start, own = starts[0]
    end = next((i for i, lev, _ in found if i > start and (lev <= own or own == 1)), len(lines))
    shift = level - own
    inside = {i: (lev, title) for i, lev, title in found if start <= i < end}
    out = []
    for i in range(start, end):
        if i in inside:
            lev, title = inside[i]
            out += [f"({github_anchor(title)})=", "#" * max(1, lev + shift) + " " + title]
        else:
            out.append(lines[i])
    body = "\n".join(out).rstrip() + "\n"
    # the README links docs/X from the repository's root; the page lives in docs/ or below
    up = "../" * docname.count("/")
    return re.sub(r"\]\(docs/", "](" + up, body)


def _expand_readme_sections(app, docname, source):
    def replace(match):
        options = dict(re.findall(r"^:([a-z-]+):[ \t]*(.*?)[ \t]*$", match.group("options"), re.MULTILINE))
        unknown = set(options) - {"level"}
        if unknown:
            raise ValueError(f"{docname}: readme-section takes only :level:, got {sorted(unknown)}")
        return readme_section(match.group("heading"), int(options.get("level", 1)), docname)

    if "{readme-section}" in source[0]:
        app.env.note_dependency(str(README))
        source[0] = _BLOCK.sub(replace, source[0])


def _table(header: list[str], rows: list[list[nodes.Node | str]], widths: list[int]) -> nodes.table:
    table = nodes.table(classes=["sda-generated"])
    group = nodes.tgroup(cols=len(header))
    table += group
    group += [nodes.colspec(colwidth=w) for w in widths]

    def row(cells):
        r = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            entry += nodes.paragraph("", "", cell if isinstance(cell, nodes.Node) else nodes.Text(cell))
            r += entry
        return r

    head = nodes.thead()
    head += row(header)
    body = nodes.tbody()
    body += [row(cells) for cells in rows]
    group += [head, body]
    return table


def _shown(value) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value))
    return "None" if value is None else str(value)


def describe_values(values) -> str:
    """The values a :class:`sda.hyperparameters.Values` allows, in words."""
    from sda.validation import MAX_COUNT

    if values.options:
        text = "one of " + ", ".join(values.options)
    else:
        kind = "integer" if values.integer else "number"
        if values.low is None and values.high is None:
            text = kind
        else:
            left = "[" if values.closed in ("both", "left") else "("
            right = "]" if values.closed in ("both", "right") else ")"
            high = values.high
            high = ("∞" if high is None else "max" if high == MAX_COUNT else str(int(high)) if values.integer
                    else f"{high:g}")
            text = f"{kind} in {left}{values.low:g}, {high}{right}"
    if values.per_layer:
        text += ", one per hidden layer" + (" (or one for all)" if values.one_for_all else "")
    if values.none:
        text += "; None: the tutorial's rising levels"
    return text


class HyperparameterTable(SphinxDirective):
    """Every hyperparameter of :data:`sda.hyperparameters.HYPERPARAMETERS`, in its order."""

    def run(self):
        from sda.hyperparameters import HYPERPARAMETERS

        rows = []
        for h in HYPERPARAMETERS:
            key = nodes.inline()
            key += [nodes.literal(text=h.name), nodes.raw("", "<br/>", format="html"), nodes.Text(" "),
                    nodes.literal(text=h.cli_flag)]
            default = _shown(h.default)
            if not h.in_estimator:
                default += " (the estimators set it themselves)"
            elif h.estimator_value != h.default:
                default += f" (estimators: {_shown(h.estimator_value)})"
            rows.append([key, default, describe_values(h.values), h.help])
        header = ["key and flag", "tutorial (estimators)", "values", "meaning"]
        return [_table(header, rows, [22, 18, 22, 38])]


class PresetTable(SphinxDirective):
    """Every preset of :data:`sda.config.PRESETS`, what it is for and what it sets."""

    def run(self):
        from sda.config import PRESET_NOTES, PRESETS, preset_settings
        from sda.hyperparameters import flags

        rows = [[nodes.literal(text=name), PRESET_NOTES[name], _verbatim(preset_settings(name, flags()))]
                for name in PRESETS]
        return [_table(["preset", "what it is for", "what it sets"], rows, [10, 30, 60])]


def _verbatim(text: str) -> nodes.inline:
    """Text whose ``--flags`` stay two hyphens (smart quotes would make them dashes)."""
    node = nodes.inline(text=text)
    node["support_smartquotes"] = False
    return node


class CommandHelp(SphinxDirective):
    """The ``--help`` text of an argparse parser, as a literal block."""

    required_arguments = 1
    optional_arguments = 10
    final_argument_whitespace = False
    option_spec = {"width": directives.positive_int}

    def run(self):
        module, _, function = self.arguments[0].partition(":")
        build = getattr(importlib.import_module(module), function)
        args = [" ".join(self.arguments[1:])] if len(self.arguments) > 1 else []
        with _columns(self.options.get("width", 100)):
            text = build(*args).format_help()
        block = nodes.literal_block(text, text, language="text")
        return [block]


@contextlib.contextmanager
def _columns(width: int):
    """argparse wraps at ``$COLUMNS``: a fixed width, whatever terminal builds the docs."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def _skip_member(app, what, name, obj, skip, options):
    """scikit-learn's metadata-routing setters (``set_fit_request``, ...), which every estimator
    gets from scikit-learn, are scikit-learn's to document."""
    if what == "class" and re.fullmatch(r"set_\w+_request", name):
        return True
    return None


def setup(app):
    app.connect("source-read", _expand_readme_sections)
    app.connect("autodoc-skip-member", _skip_member)
    app.add_directive("hyperparameter-table", HyperparameterTable)
    app.add_directive("preset-table", PresetTable)
    app.add_directive("command-help", CommandHelp)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
