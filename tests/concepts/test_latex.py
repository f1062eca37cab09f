"""LaTeX concepts, hand-checked spans; fixed capture groups vs the paper's whole matches."""

from __future__ import annotations

from moelens.data.concepts import get_concept


def spans(name, text, variant="fixed"):
    return [text[s:e] for s, e in get_concept(name, variant).label(text)]


MATH = r"Let $x^2 + y_{ij} = \frac{a+b}{c}$ and \[ \dfrac12 \] see \citep[p.~3]{knuth} [@lamport94]."


def test_math_regions():
    assert spans("inline_math", MATH) == [r"$x^2 + y_{ij} = \frac{a+b}{c}$"]
    assert spans("display_math", MATH) == [r"\[ \dfrac12 \]"]
    assert spans("any_math", MATH) == [r"$x^2 + y_{ij} = \frac{a+b}{c}$", r"\[ \dfrac12 \]"]
    text = "cost \\$5 and $$E=mc^2$$ then \\begin{align*}a&=b\\end{align*}"
    assert spans("inline_math", text) == []
    assert spans("display_math", text) == ["$$E=mc^2$$", "\\begin{align*}a&=b\\end{align*}"]


def test_scripts_inside_math_only_when_fixed():
    assert spans("superscript", MATH) == ["^2"]
    assert spans("subscript", MATH) == ["_{ij}"]
    code = r"\tl_set:Nn \l_tmpa_tl {x}"
    assert spans("subscript", code) == []
    assert spans("subscript", code, "paper") != []


def test_fraction_numerator_is_its_capture_group():
    text = r"$\frac{a+b}{c}$"
    assert spans("frac", text) == [r"\frac{a+b}{c}"]
    assert spans("numerator", text) == ["a+b"]
    assert spans("denominator", text) == ["c"]
    # the paper's regex labelled the whole \frac for all three
    assert spans("numerator", text, "paper") == [r"\frac{a+b}{c}"]
    assert spans("denominator", text, "paper") == [r"\frac{a+b}{c}"]


def test_fraction_balanced_braces_and_nesting():
    text = r"$\frac{\frac{1}{x^{2}}}{y+{z}}$ and $\tfrac12$"
    assert spans("numerator", text) == [r"\frac{1}{x^{2}}", "1", "1"]
    assert spans("denominator", text) == ["x^{2}", "y+{z}", "2"]
    assert spans("frac", text)[0] == r"\frac{\frac{1}{x^{2}}}{y+{z}}"


def test_citations():
    assert spans("citation", MATH) == [r"\citep[p.~3]{knuth}", "[@lamport94]"]
    assert spans("citation", MATH, "paper") == ["[@lamport94]"]


LATEX_DOC = r"""\documentclass{article}
\title{On {Nested} Things}
\author{A. Person \and B. Other}
\begin{abstract}
We study things.
\end{abstract}"""

PANDOC_DOC = """---
abstract: |
    We study a thing.
    It is good.
author:
- Alice
- Bob
title: A Title
---
Body with [@ref] text.
"""


def test_title_author_abstract_label_their_content():
    assert spans("title", LATEX_DOC) == ["On {Nested} Things"]
    assert spans("author", LATEX_DOC) == [r"A. Person \and B. Other"]
    assert spans("abstract", LATEX_DOC) == ["We study things."]
    assert spans("title", PANDOC_DOC) == ["A Title"]
    assert spans("author", PANDOC_DOC) == ["- Alice\n- Bob"]
    assert spans("abstract", PANDOC_DOC) == ["We study a thing.\n    It is good."]


def test_paper_variant_labels_whole_match():
    assert spans("title", PANDOC_DOC, "paper") == ["title: A Title"]
    assert spans("abstract", LATEX_DOC, "paper") == ["\\begin{abstract}\nWe study things.\n\\end{abstract}"]
    assert spans("author", LATEX_DOC, "paper") == [r"\author{A. Person \and B. Other}"]


def test_paper_window_first_300_characters():
    text = "x" * 290 + r" $\frac{a}{b}$ " + "y" * 50 + r" $\frac{c}{d}$"
    assert spans("frac", text) == [r"\frac{a}{b}", r"\frac{c}{d}"]
    assert spans("frac", text, "paper") == [r"\frac{a}{b}"[: 300 - 292]]
