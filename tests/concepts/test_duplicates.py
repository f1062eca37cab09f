"""Concepts labelling identical tokens are found on real tokens, and declared as such."""

from __future__ import annotations

from moelens.data.concepts import find_duplicates, get_concept, list_concepts
from moelens.data.corpora.counts import proxy_offsets

DOCS = [
    r"We have $\frac{a+b}{c}$ and $\frac{x}{1+y}$, in 2024 and 12 cases.",
    r"Digits 7 and 3.14 appear; $\frac{\alpha}{\beta}$ too, said an iPhone.",
]


def names(variant):
    return [get_concept(n, variant) for n in ("frac", "numerator", "denominator")] + [
        c for c in list_concepts("text", variant)]


def test_paper_variant_has_the_papers_duplicates():
    groups = find_duplicates(names("paper"), DOCS, proxy_offsets)
    as_sets = [set(g) for g in groups]
    assert {"frac", "numerator", "denominator"} in as_sets
    assert {"digits", "contains_digit"} in as_sets


def test_fixed_variant_keeps_only_the_declared_duplicate():
    groups = [set(g) for g in find_duplicates(names("fixed"), DOCS, proxy_offsets)]
    assert groups == [{"digits", "contains_digit"}]
    for group in groups:
        flagged = [n for n in group if get_concept(n).duplicate_of]
        assert len(flagged) == len(group) - 1  # all but one canonical concept are flagged


def test_concepts_without_positives_are_not_reported():
    groups = find_duplicates(names("fixed"), ["plain words only"], proxy_offsets)
    assert all("frac" not in g for g in groups)
