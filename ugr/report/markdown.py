"""Names and values written into markdown (report.md, RESULTS.md, the model card), made inert.

Every experiment name, weighting label, class, path and recorded value that
stage 4 or ugr-export writes into a page goes through one of these:

* ``markdown_cell``: text on one line for a table cell, a heading or a
  sentence: ``\\`` and ``|`` escaped (a name adds no column), ``[``, ``]`` and
  backticks escaped (a name forms no link, image or code span), ``&``, ``<``
  and ``>`` as HTML entities (no tag such as ``<img onerror=...>`` and no
  autolink reaches the page);
* ``code_span``: text on one line as an inline code span whose backtick
  fence the text cannot close (not for table cells: a table still splits a
  code span at ``|``);
* ``fenced``: a fenced code block whose fence the text cannot close.
"""

from __future__ import annotations

import re

_ESCAPED = str.maketrans(
    {"\\": "\\\\", "|": "\\|", "[": "\\[", "]": "\\]", "`": "\\`", "&": "&amp;", "<": "&lt;", ">": "&gt;"}
)


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (line breaks included) as one space."""
    return " ".join(str(text).split())


def markdown_cell(text: object) -> str:
    """``text`` on one line, safe in a markdown table cell and as markdown text: ``\\``, ``|``, ``[``, ``]`` and
    backticks escaped, ``&``, ``<`` and ``>`` as HTML entities (no tag, e.g. ``<img onerror=...>``, and no link
    reaches the page)."""
    return one_line(text).translate(_ESCAPED)


def code_span(text: object) -> str:
    """``text`` on one line as an inline code span: its fence one backtick longer than any run of backticks in
    it, so that the text cannot close it (HTML and links are literal there; a table would still split at
    ``|``: not for table cells)."""
    text = one_line(text)
    ticks = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def fenced(text: str, language: str = "") -> str:
    """``text`` as a fenced code block, the fence longer than any run of backticks in it."""
    fence = "`" * max(3, max((len(run) + 1 for run in re.findall("`+", text)), default=0))
    return f"{fence}{language}\n{text}\n{fence}"
