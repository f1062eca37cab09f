"""Coverage and reconstruction: planted units, random units against the chance level, and the
vectorised scorer against the loop-based reference."""

from __future__ import annotations

import numpy as np
import pytest

from moelens.analysis.boardgame import (
    BSPLabels, THRESHOLDS, score_blocks, score_function, score_functions,
)
from moelens.analysis.boardgame.reference import reference_scores


def _onehot_board(rng, n, squares, classes):
    """bool [n, squares*classes]: one class per square, like a flattened piece board."""
    cls = rng.integers(0, classes, size=(n, squares))
    y = np.zeros((n, squares, classes), dtype=bool)
    y[np.arange(n)[:, None], np.arange(squares)[None, :], cls] = True
    return y.reshape(n, -1)


def test_planted_units_cover_and_reconstruct_every_counted_cell():
    rng = np.random.default_rng(0)
    y_fit = _onehot_board(rng, 400, 4, 3)
    y_test = _onehot_board(rng, 300, 4, 3)
    mask = np.ones(12, dtype=bool)
    mask[2::3] = False  # class 2 of every square masked, like the blank class
    # one unit per counted cell, firing exactly where the cell holds, plus noise-free extras
    counted = np.flatnonzero(mask)
    scale = rng.uniform(0.5, 3.0, size=len(counted)).astype(np.float32)
    a_fit = y_fit[:, counted] * scale
    a_test = y_test[:, counted] * scale
    s = score_function(a_fit, a_test, BSPLabels(y_fit, y_test, mask))
    assert s.coverage == pytest.approx(1.0, abs=1e-6)
    assert s.reconstruction == pytest.approx(1.0, abs=1e-6)
    assert s.n_cells == len(counted)
    assert s.n_labelled == len(counted)
    # the masked cells really are excluded: the planted set has no unit for them
    s_all = score_function(a_fit, a_test, BSPLabels(y_fit, y_test, np.ones(12, bool)))
    assert s_all.coverage < 0.9


def test_random_units_reconstruct_nothing_and_cover_at_chance():
    rng = np.random.default_rng(1)
    n = 4000
    y_fit = _onehot_board(rng, n, 16, 4)
    y_test = _onehot_board(rng, n, 16, 4)
    mask = np.ones(64, dtype=bool)
    a_fit = np.maximum(rng.normal(size=(n, 64)), 0).astype(np.float32)  # fires on ~half
    a_test = np.maximum(rng.normal(size=(n, 64)), 0).astype(np.float32)
    s = score_function(a_fit, a_test, BSPLabels(y_fit, y_test, mask))
    assert s.reconstruction < 0.01
    assert s.n_labelled == 0
    # base rate 1/4, q ≈ 1/2: chance ≈ 2·0.5·0.25/0.75 = 1/3, far from 0
    assert s.chance_coverage == pytest.approx(1 / 3, rel=0.03)
    assert s.coverage_threshold == 0.0
    # the max over 64 units per cell adds sampling noise upwards (a few sd of one unit's F1)
    assert s.chance_coverage - 0.005 <= s.coverage <= s.chance_coverage * 1.10
    # one random unit: no max over units, so its coverage is the chance level up to noise
    one = score_function(a_fit[:, :1], a_test[:, :1], BSPLabels(y_fit, y_test, mask))
    assert one.coverage == pytest.approx(one.chance_coverage, rel=0.02)


def _signed(rng, n, u):
    return rng.normal(size=(n, u)).astype(np.float32)


def _relu_sparse(rng, n, u):
    a = rng.exponential(size=(n, u)).astype(np.float32)
    a[rng.random((n, u)) < 0.85] = 0.0
    return a


def _tied(rng, n, u):
    # values on the threshold grid of a unit with max 1: many a == t·m exactly
    a = (rng.integers(0, 11, size=(n, u)) / 10).astype(np.float32)
    a[0] = 1.0
    return a


def _labels_correlated(rng, a, cells):
    """Cells that follow some units (so that labels at P ≥ 0.95 appear) plus random cells."""
    n, u = a.shape
    y = rng.random((n, cells)) < rng.uniform(0.05, 0.5, size=cells)
    for g in range(0, cells, 2):
        f = g % u
        y[:, g] = (a[:, f] > np.quantile(a[:, f], 0.6)) ^ (rng.random(n) < 0.01)
    return y


@pytest.mark.parametrize("labelling", ["paper", "corrected"])
@pytest.mark.parametrize("kind", ["signed", "relu_sparse", "tied"])
@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_vectorised_equals_reference(kind, chunk, labelling):
    rng = np.random.default_rng({"signed": 2, "relu_sparse": 3, "tied": 4}[kind])
    n_fit, n_test, units, cells = 120, 90, 7, 6
    make = {"signed": _signed, "relu_sparse": _relu_sparse, "tied": _tied}[kind]
    a_fit, a_test = make(rng, n_fit, units), make(rng, n_test, units)
    a_fit[:, 5] = 0.0  # a dead unit (its test activations are not all zero)
    if kind == "signed":
        a_fit[:, 4] = -np.abs(a_fit[:, 4])  # max |a| from negative values: never fires
    y_fit = _labels_correlated(rng, a_fit, cells)
    y_test = _labels_correlated(rng, a_test, cells)
    mask = np.array([True, True, False, True, True, False])
    y_fit[:, 3] |= rng.random(n_fit) < 0.97  # a common cell: the two labelling rules differ
    y_test[:, 3] |= rng.random(n_test) < 0.97
    ref = reference_scores(a_fit, a_test, y_fit, y_test, mask, labelling)
    got = score_function(a_fit, a_test, BSPLabels(y_fit, y_test, mask), chunk_units=chunk,
                         labelling=labelling)
    np.testing.assert_allclose(got.coverage_per_threshold, ref["coverage_per_threshold"],
                               atol=1e-6, rtol=0)
    np.testing.assert_allclose(got.reconstruction_per_threshold,
                               ref["reconstruction_per_threshold"], atol=1e-6, rtol=0)
    assert got.n_alive == ref["n_alive"] == units - 1
    assert max(ref["reconstruction_per_threshold"]) > 0.1  # the labelling path is exercised


def test_several_functions_in_one_pass_equal_separate_scores():
    rng = np.random.default_rng(5)
    a_fit, a_test = _relu_sparse(rng, 200, 9), _relu_sparse(rng, 150, 9)
    fns = {name: BSPLabels(_labels_correlated(rng, a_fit, c), _labels_correlated(rng, a_test, c),
                           rng.random(c) < 0.8 if c > 1 else np.ones(1, bool))
           for name, c in (("board", 8), ("flag", 1), ("squares", 5))}
    together = score_functions(a_fit, a_test, fns, chunk_units=4)
    # the same units handed over in uneven blocks (as a store streams experts) score the same
    cuts = [0, 2, 3, 9]
    blocks = [(a_fit[:, a:b], a_test[:, a:b]) for a, b in zip(cuts, cuts[1:])]
    streamed = score_blocks(blocks, fns, chunk_units=4)
    for name, labels in fns.items():
        for field in ("coverage_per_threshold", "reconstruction_per_threshold", "cell_f1",
                      "cell_labelled", "labelled_per_threshold"):
            np.testing.assert_array_equal(getattr(streamed[name], field),
                                          getattr(together[name], field))
        ref = reference_scores(a_fit, a_test, labels.y_fit, labels.y_test, labels.cell_mask,
                               "corrected")
        np.testing.assert_allclose(together[name].coverage_per_threshold,
                                   ref["coverage_per_threshold"], atol=1e-6, rtol=0)
        np.testing.assert_allclose(together[name].reconstruction_per_threshold,
                                   ref["reconstruction_per_threshold"], atol=1e-6, rtol=0)


def test_thresholds_are_the_reference_grid():
    np.testing.assert_array_equal(THRESHOLDS, np.float32([i / 10 for i in range(11)]))


def test_a_common_cell_is_labelled_by_random_units_only_under_the_paper_rule():
    """A flag that holds on 97% of positions: random units that fire almost everywhere reach
    precision 0.97 by the base rate alone. The paper's rule labels them and reconstruction then
    equals the always-on guess; the corrected rule labels none of them."""
    rng = np.random.default_rng(7)
    n, units = 3000, 16
    y_fit, y_test = rng.random((n, 1)) < 0.97, rng.random((n, 1)) < 0.97
    a_fit = (rng.normal(size=(n, units)) + 3.0).astype(np.float32)  # positive everywhere
    a_test = (rng.normal(size=(n, units)) + 3.0).astype(np.float32)
    labels = BSPLabels(y_fit, y_test, np.ones(1, bool))
    paper = score_function(a_fit, a_test, labels, labelling="paper")
    corrected = score_function(a_fit, a_test, labels)
    assert paper.n_labelled == units
    assert paper.reconstruction == pytest.approx(paper.chance_reconstruction, abs=1e-9)
    assert paper.chance_reconstruction > 0.98
    assert corrected.n_labelled == 0 and corrected.reconstruction == 0.0
    assert corrected.reconstruction_paper == paper.reconstruction
    # a unit that does know the flag is labelled by both rules
    a_fit[:, 0], a_test[:, 0] = y_fit[:, 0], y_test[:, 0]
    known = score_function(a_fit, a_test, labels)
    assert known.n_labelled >= 1 and known.reconstruction == pytest.approx(1.0)
