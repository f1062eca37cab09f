"""Board reconstruction from labelled units: predicting the test board (Karvonen et al. 2024).

A unit labelled with cell g at threshold t (fitting precision ≥ 0.95, ≥ 10 true positives)
predicts g at every test position where it fires above t·m_f; a cell is predicted where any of
its units does, and the predicted board is compared with the true one by micro-averaged F1 over
all (position, counted cell) pairs, per threshold slot.

The last slot (index 10, t = 1.0) is, as written, empty on the fitting set: no activation exceeds
its own max. The reference gives that slot another rule, "per unit, the highest threshold it
exceeds". Our reading: at a test position each unit f uses the highest threshold t_j that its
activation exceeds (a_f(x) > t_j·m_f) *among the thresholds at which f is labelled*, and predicts
the cells it is labelled with at t_j. A unit thus contributes its most precise label set that the
position supports, instead of one threshold shared by all units.

Only the test activations of labelled units are needed here, so a streaming scorer keeps just
those columns (see :mod:`.metrics`).
"""

from __future__ import annotations

import numpy as np

from moelens.analysis.boardgame.inputs import EPS, THRESHOLDS

N_T = len(THRESHOLDS)


def levels(a: np.ndarray, m: np.ndarray) -> np.ndarray:
    """int8 [n, k]: index of the highest threshold t with a > t·m (float32), −1 where none."""
    thr = THRESHOLDS[:, None] * m[None, :]
    lev = np.full(a.shape, -1, dtype=np.int8)
    for i in range(N_T):  # "exceeds t_i" is a prefix in i: the count is the level
        lev += a > thr[i]
    return lev


def f1_scores(tp, n_fire, n_pos):
    """Precision, recall and F1 with ε in every denominator (float64)."""
    tp = np.asarray(tp, dtype=np.float64)
    p = tp / (np.asarray(n_fire, dtype=np.float64) + EPS)
    r = tp / (np.asarray(n_pos, dtype=np.float64) + EPS)
    return p, r, 2.0 * p * r / (p + r + EPS)


def predict_slot(a_test: np.ndarray, m: np.ndarray, lab: np.ndarray, slot: int, chunk: int
                 ) -> np.ndarray:
    """bool [n_test, C]: cells predicted on test by labelled units at one slot.

    ``a_test`` float32 [n_test, u] and ``m`` [u] are the labelled units' test activations and
    maxima, ``lab`` bool [u, 11, C] their labels per threshold.
    """
    n_test, n_cells = a_test.shape[0], lab.shape[2]
    hits = np.zeros((n_test, n_cells), dtype=np.float32)
    for s in range(0, lab.shape[0], chunk):
        a_u, m_u, l_u = a_test[:, s:s + chunk], m[s:s + chunk], lab[s:s + chunk]
        if slot < N_T - 1:
            fire = (a_u > THRESHOLDS[slot] * m_u).astype(np.float32)
            hits += fire @ l_u[:, slot, :].astype(np.float32)
            continue
        # last slot: per unit, the highest exceeded threshold at which it carries labels
        lev = levels(a_u, m_u)
        has = l_u.any(axis=2)
        best = np.maximum.accumulate(np.where(has, np.arange(N_T), -1), axis=1)  # [u, 11]
        eff = np.where(lev >= 0, best[np.arange(len(m_u))[None, :], np.maximum(lev, 0)], -1)
        for j in range(N_T):
            if has[:, j].any():
                hits += (eff == j).astype(np.float32) @ l_u[:, j, :].astype(np.float32)
    return hits > 0


def micro_f1(pred: np.ndarray, y: np.ndarray) -> float:
    """Micro-averaged F1 of a predicted board against the true one (all cells pooled)."""
    tp = np.count_nonzero(pred & y)
    return float(f1_scores(tp, np.count_nonzero(pred), np.count_nonzero(y))[2])


def reconstruct(a_test: np.ndarray, m: np.ndarray, lab: np.ndarray, y_test: np.ndarray,
                chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Test micro F1 [11] and labelled-unit counts [11] per slot, for one function's cells.

    ``lab`` bool [u, 11, C] are the labels of the u units labelled with at least one of the
    function's counted cells; ``a_test`` [n_test, u] and ``m`` [u] their activations and maxima.
    """
    rec = np.zeros(N_T)
    n_lab = np.zeros(N_T, dtype=np.int64)
    any_cell = lab.any(axis=2)
    for slot in range(N_T):
        on = any_cell[:, slot] if slot < N_T - 1 else np.ones(lab.shape[0], bool)
        n_lab[slot] = int(on.sum())
        if n_lab[slot]:
            pred = predict_slot(a_test[:, on], m[on], lab[on], slot, chunk)
            rec[slot] = micro_f1(pred, y_test)
    return rec, n_lab
