"""The residual board probe: a residual stream that encodes the board linearly is read back
almost perfectly, one that carries no board information only reaches the majority baseline."""

from __future__ import annotations

import numpy as np
import pytest

from moelens.analysis.boardgame.probe import fit_board_probe, piece_classes, start_classes
from moelens.data.chess.labels import compute_labels
from moelens.data.chess.random_games import random_games
from moelens.errors import DataError


@pytest.fixture(scope="module")
def boards():
    lab = compute_labels(random_games(60, seed=11, max_plies=40))
    y = piece_classes(lab.labels["piece"])
    fit = lab.game_index < 30
    return y[fit], y[~fit]


def _encode(y, codes, rng, noise):
    """A 'residual stream' holding the board linearly: per square, a 4-d code of its class."""
    x = codes[y].reshape(len(y), -1)                                    # [n, 64 * 4]
    return x + noise * rng.normal(size=x.shape).astype(np.float32)


def test_a_linearly_encoded_board_is_read_back_and_noise_is_not(boards):
    y_fit, y_test = boards
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(13, 4)).astype(np.float32)
    good = fit_board_probe(_encode(y_fit, codes, rng, 0.05), y_fit,
                           _encode(y_test, codes, rng, 0.05), y_test, steps=60)
    assert good.accuracy > 0.85 and good.accuracy_changed > 0.75
    noise = fit_board_probe(rng.normal(size=(len(y_fit), 32)).astype(np.float32), y_fit,
                            rng.normal(size=(len(y_test), 32)).astype(np.float32), y_test,
                            steps=30)
    # no information: at best each square's commonest class (less, by overfitting)
    assert noise.accuracy < noise.majority_accuracy + 0.01
    assert noise.accuracy_changed < 0.2 and noise.majority_accuracy_changed < 0.05
    assert good.accuracy > noise.accuracy + 0.2


def test_piece_classes_and_bad_input(boards):
    y_fit, _ = boards
    assert (y_fit[0] == start_classes()).all()  # the first position of a game is the start
    assert start_classes()[0] == 3 and start_classes()[63] == 9 and start_classes()[30] == 12
    with pytest.raises(DataError, match="exactly one class"):
        piece_classes(np.zeros((2, 64 * 13), bool))
    with pytest.raises(DataError, match="fitting and test positions"):
        fit_board_probe(np.zeros((0, 4), np.float32), y_fit[:0], np.zeros((3, 4), np.float32),
                        y_fit[:3])
