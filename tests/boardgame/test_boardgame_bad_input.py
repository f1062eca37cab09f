"""Bad inputs to the board-game metrics raise one-line moelens errors."""

from __future__ import annotations

import numpy as np
import pytest

from moelens.analysis.boardgame import BSPLabels, score_function
from moelens.errors import ConfigError, DataError


def _ok(n_fit=20, n_test=10, units=3, cells=4):
    rng = np.random.default_rng(0)
    return (rng.random((n_fit, units), dtype=np.float32), rng.random((n_test, units), np.float32),
            BSPLabels(rng.random((n_fit, cells)) < 0.5, rng.random((n_test, cells)) < 0.5,
                      np.ones(cells, bool)))


def _raises(kind, match, *args, **kw):
    with pytest.raises(kind, match=match) as err:
        score_function(*args, **kw)
    assert "\n" not in str(err.value)


def test_shape_mismatches_and_empty_inputs():
    a_fit, a_test, lab = _ok()
    _raises(DataError, "units", a_fit, a_test[:, :2], lab)
    _raises(DataError, "no positions", a_fit[:0], a_test, lab)
    _raises(DataError, "no positions", a_fit, a_test[:0], lab)
    _raises(DataError, "2-D", a_fit[:, 0], a_test, lab)
    _raises(DataError, "same positions", a_fit, a_test,
            BSPLabels(lab.y_fit[:5], lab.y_test, lab.cell_mask))
    _raises(DataError, "cells", a_fit, a_test,
            BSPLabels(lab.y_fit, lab.y_test[:, :3], lab.cell_mask))
    _raises(DataError, "boolean", a_fit, a_test,
            BSPLabels(lab.y_fit * 2, lab.y_test, lab.cell_mask))
    bad = a_fit.copy()
    bad[0, 0] = np.nan
    _raises(DataError, "NaN", bad, a_test, lab)


def test_bad_config():
    a_fit, a_test, lab = _ok()
    _raises(ConfigError, "excludes every cell", a_fit, a_test,
            BSPLabels(lab.y_fit, lab.y_test, np.zeros(4, bool)))
    _raises(ConfigError, "chunk_units", a_fit, a_test, lab, chunk_units=0)
