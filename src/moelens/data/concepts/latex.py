"""The paper's 12 LaTeX concepts, for raw LaTeX and for pandoc-style arXiv text.

The paper labelled arXiv text in the form the Pile ships it (pandoc markdown: a YAML header with
``title:``, ``author:`` and ``abstract: |``, math kept as ``$…$``, citations ``[@key]``). The
offline corpus is raw LaTeX (``\\title{…}``, ``\\begin{abstract}``, ``\\cite{…}``), so the fixed
labellers understand both.

Fixed vs paper:

- numerator / denominator label the *content* of their argument (balanced-brace parse); the
  paper's regex labelled the whole ``\\frac{…}{…}``, making both identical to ``frac``
  (paper variant: ``duplicate_of="frac"``).
- title / author / abstract label the field's content; the paper labelled the whole match,
  key or command included.
- citation also covers ``\\cite``-family commands (the paper: ``[@…]`` only).
- superscript / subscript count only inside math (``_`` is everywhere in LaTeX package code);
  the paper variant matches them anywhere.
- paper window: the first 300 characters of each document.
"""

from __future__ import annotations

import re

from moelens.data.concepts import latex_parse as lp
from moelens.data.concepts.labelling import inside, regex_labeller, regex_spans, union
from moelens.data.concepts.registry import Span, Window, define

GROUP = "latex"
PAPER_WINDOW = Window("first", 300)


def inline_math(text: str) -> list[Span]:
    return list(lp.math_regions(text)[0])


def display_math(text: str) -> list[Span]:
    return list(lp.math_regions(text)[1])


def any_math(text: str) -> list[Span]:
    inline, display = lp.math_regions(text)
    return sorted(inline + display)


def _script(marker: str):
    """``^``/``_`` plus its argument (group, control word or one character), inside math."""

    def label(text: str) -> list[Span]:
        out = []
        for m in re.finditer(re.escape(marker), text):
            if m.start() > 0 and text[m.start() - 1] == "\\":
                continue
            arg = lp.macro_argument(text, m.end())
            if arg is not None:
                end = arg[1]
                out.append((m.start(), end))
        return inside(out, any_math(text))

    return label


def frac(text: str) -> list[Span]:
    return [whole for whole, _, _ in lp.fractions(text)]


def numerator(text: str) -> list[Span]:
    return [num for _, num, _ in lp.fractions(text) if num[1] > num[0]]


def denominator(text: str) -> list[Span]:
    return [den for _, _, den in lp.fractions(text) if den[1] > den[0]]


_YAML_TITLE = re.compile(r"^title:[ \t]*(\S.*)$", re.M)
_YAML_AUTHOR = re.compile(r"^author:[ \t]*((?:\S.*)?(?:\n[ \t]*-.*|\n[ \t]+[^\s-].*)*)", re.M)
_YAML_ABSTRACT = re.compile(r"^abstract:[ \t]*(?:[|>][-+]?[ \t]*\n)?((?:.*\S.*)?(?:\n[ \t]+.*)*)",
                            re.M)
_ABSTRACT_ENV = re.compile(r"\\begin\{abstract\}(.*?)\\end\{abstract\}", re.S)


def _strip(text: str, spans: list[Span]) -> list[Span]:
    """Trim surrounding whitespace from each span; drop spans that become empty."""
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            out.append((s, e))
    return out


def title(text: str) -> list[Span]:
    return _strip(text, lp.command_argument(text, "title") + regex_spans(_YAML_TITLE, text, 1))


def author(text: str) -> list[Span]:
    return _strip(text, lp.command_argument(text, "author") + regex_spans(_YAML_AUTHOR, text, 1))


def abstract(text: str) -> list[Span]:
    return _strip(text, regex_spans(_ABSTRACT_ENV, text, 1) + regex_spans(_YAML_ABSTRACT, text, 1))


_CITE = r"\\(?:no)?cite[A-Za-z]*\*?(?:\[[^\]\n]*\]){0,2}\{[^}]*\}"
_PANDOC_CITE = r"\[@[^\]]*\]"

# Paper variants: the matching regexes, whole match labelled (capture groups ignored).
_PAPER_FRAC = r"\\frac\{(.*?)\}\{(.*?)\}"
_PAPER_TITLE = r"\\title\{[^}]*\}|^title:.*$"
_PAPER_AUTHOR = r"\\author\{[^}]*\}|^author:.*(?:\n[ \t]*-.*|\n[ \t]+[^\s-].*)*"
_PAPER_ABSTRACT = r"\\begin\{abstract\}[\s\S]*?\\end\{abstract\}|^abstract:.*(?:\n[ \t]+.*)*"
_PAPER_SUP = r"\^(?:\{[^}]*\}|\\[A-Za-z]+|\S)"
_PAPER_SUB = r"(?<!\\)_(?:\{[^}]*\}|\\[A-Za-z]+|\S)"

define(GROUP, "superscript", "a ^ and its argument in math", _script("^"),
       paper=regex_labeller(_PAPER_SUP), paper_window=PAPER_WINDOW)
define(GROUP, "subscript", "a _ and its argument in math", _script("_"),
       paper=regex_labeller(_PAPER_SUB), paper_window=PAPER_WINDOW)
define(GROUP, "inline_math", "inline math, $…$ or \\(…\\)", inline_math, paper_window=PAPER_WINDOW)
define(GROUP, "display_math", "display math: $$…$$, \\[…\\], equation-like environments",
       display_math, paper_window=PAPER_WINDOW)
define(GROUP, "any_math", "any math region", any_math, paper_window=PAPER_WINDOW)
define(GROUP, "frac", "a whole \\frac{…}{…}", frac,
       paper=regex_labeller(_PAPER_FRAC), paper_window=PAPER_WINDOW)
define(GROUP, "numerator", "the numerator of a \\frac (content of the first group)", numerator,
       paper=regex_labeller(_PAPER_FRAC), paper_window=PAPER_WINDOW,
       paper_duplicate_of="frac", merged_with=())
define(GROUP, "denominator", "the denominator of a \\frac (content of the second group)",
       denominator, paper=regex_labeller(_PAPER_FRAC), paper_window=PAPER_WINDOW,
       paper_duplicate_of="frac")
define(GROUP, "author", "the author block's content", author,
       paper=regex_labeller(_PAPER_AUTHOR, flags=re.M), paper_window=PAPER_WINDOW)
define(GROUP, "title", "the title's content", title,
       paper=regex_labeller(_PAPER_TITLE, flags=re.M), paper_window=PAPER_WINDOW)
define(GROUP, "citation", "a citation: [@key] or a \\cite-family command",
       union(regex_labeller(_PANDOC_CITE), regex_labeller(_CITE)),
       paper=regex_labeller(_PANDOC_CITE), paper_window=PAPER_WINDOW)
define(GROUP, "abstract", "the abstract's content", abstract,
       paper=regex_labeller(_PAPER_ABSTRACT, flags=re.M), paper_window=PAPER_WINDOW)
