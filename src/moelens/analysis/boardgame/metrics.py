"""Coverage and board reconstruction (Karvonen et al. 2024), vectorised over units and cells.

The definitions are those of the reference (``boardgame.md``); :mod:`.reference` spells them out
with loops and the tests hold the two to 1e-6. How this module gets the same numbers fast:

- Each activation is reduced to its *level*: the index of the highest threshold t·m_f it exceeds
  (−1 for none). Because t·m_f rises with t, "fires at t" is "level ≥ t", so one sparse one-hot
  matrix over (unit, level) per chunk of units, times the float32 labels, gives every threshold's
  true positives at once (a reverse cumulative sum over levels). The product costs the number of
  firing (position, unit) pairs times the cells, not 11 × positions × units × cells; counts are
  exact in float32 (below 2^24). No Python loop runs over units or cells.
- Units are processed ``chunk_units`` at a time, so memory is bounded by
  ``chunk_units × 11 × cells`` whatever the unit space's width.
- Several BSP functions share one pass over the units (:func:`score_functions`); masked cells are
  dropped up front since they count nowhere.

The last reconstruction slot (index 10, t = 1.0) is, as written, empty on the fitting set — no
activation exceeds its own max — so the reference gives that slot another rule: "per unit, the
highest threshold it exceeds". Our reading: at a test position each unit f uses the highest
threshold t_j that its activation exceeds (a_f(x) > t_j·m_f) *among the thresholds at which f is
labelled*, and predicts the cells it is labelled with at t_j. A unit thus contributes its most
precise label set that the position supports, instead of one threshold shared by all units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
from scipy import sparse

from moelens.analysis.boardgame.inputs import (
    EPS, MIN_TRUE_POSITIVES, PRECISION_BAR, THRESHOLDS, BSPLabels, check_activations,
    check_chunk, check_labels,
)
from moelens.errors import ConfigError

N_T = len(THRESHOLDS)


@dataclass(frozen=True)
class BoardScore:
    """Coverage and reconstruction of one unit space for one BSP function."""

    coverage: float
    """Cov(G) = max over thresholds of the mean over counted cells of the best unit's F1."""
    coverage_threshold: float
    """The threshold (fraction of each unit's max) at which coverage peaks (first on ties)."""
    reconstruction: float
    """Best micro-averaged F1 over thresholds of the test board predicted by labelled units."""
    reconstruction_threshold: float
    """The threshold of the best reconstruction; 1.0 means the per-unit last slot."""
    chance_coverage: float
    """Coverage expected of units carrying no information about the board (see chance_coverage)."""
    n_units: int
    """Units scored."""
    n_alive: int
    """Units with m_f = max |a_f| > 0 on the fitting positions."""
    n_labelled: int
    """Units labelled with at least one counted cell at the best reconstruction slot."""
    n_cells: int
    """|G|: the counted cells of the function."""
    coverage_per_threshold: np.ndarray
    """float64 [11]: mean over counted cells of max over units of F1, per threshold."""
    reconstruction_per_threshold: np.ndarray
    """float64 [11]: test micro F1 per slot (the last slot is the per-unit rule)."""
    labelled_per_threshold: np.ndarray
    """int64 [11]: units labelled with a counted cell, per slot (last: at any threshold)."""


def unit_max(a_fit: np.ndarray) -> np.ndarray:
    """m_f = max |a_f| over the fitting positions, float32 [n_units]."""
    return np.abs(a_fit).max(axis=0)


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


def fit_counts(lev: np.ndarray, y: np.ndarray):
    """True positives [k, 11, C] and firing counts [k, 11] of k units from their levels.

    ``y`` is float32 [n, C]. One sparse product: rows (unit, level), columns positions.
    """
    n, k = lev.shape
    xs, fs = np.nonzero(lev >= 0)
    rows = fs.astype(np.int64) * N_T + lev[xs, fs]
    onehot_t = sparse.csr_matrix((np.ones(len(xs), dtype=np.float32), (rows, xs)),
                                 shape=(k * N_T, n))
    per_level = np.asarray(onehot_t @ y).reshape(k, N_T, -1)
    tp = np.flip(np.cumsum(np.flip(per_level, 1), axis=1), 1)
    fire = np.bincount(rows, minlength=k * N_T).reshape(k, N_T)
    fire = np.flip(np.cumsum(np.flip(fire, 1), axis=1), 1)
    return tp, fire


def chance_coverage(a_fit: np.ndarray, y_fit: np.ndarray) -> float:
    """Coverage of units whose firing is independent of the board, at the units' own firing rates.

    A unit firing on a fraction q of positions, independently of cell g (base rate b), has
    expected precision b and recall q, so F1 = 2qb/(q+b) (with ε as everywhere). That F1 rises with
    q, and q is largest at threshold 0, so for every cell the best such unit is the one with the
    highest threshold-0 firing rate q* = max_f #(a_f > 0)/n. Chance level := mean over counted
    cells of F1(P=b_g, R=q*), b_g on the fitting positions. It is the expectation for one unit;
    the max over many random units sits a little above it (sampling noise).
    """
    return _chance(float((a_fit > 0).mean(axis=0).max()), y_fit)


def _chance(q_star: float, y_fit: np.ndarray) -> float:
    b = y_fit.mean(axis=0, dtype=np.float64)
    f1 = 2.0 * b * q_star / (b + q_star + EPS)
    return float(f1.mean())


def _predict_slot(a_test, m, units, lab, slot, chunk):
    """bool [n_test, C]: cells predicted on test by the labelled units at one slot.

    ``units`` int [u], ``lab`` bool [u, 11, C]: the labels of those units per threshold.
    """
    n_test, n_cells = a_test.shape[0], lab.shape[2]
    hits = np.zeros((n_test, n_cells), dtype=np.float32)
    for s in range(0, len(units), chunk):
        u = units[s:s + chunk]
        l_u = lab[s:s + chunk]
        if slot < N_T - 1:
            fire = (a_test[:, u] > THRESHOLDS[slot] * m[u]).astype(np.float32)
            hits += fire @ l_u[:, slot, :].astype(np.float32)
            continue
        # last slot: per unit, the highest exceeded threshold at which it carries labels
        lev = levels(a_test[:, u], m[u])
        has = l_u.any(axis=2)
        best = np.maximum.accumulate(np.where(has, np.arange(N_T), -1), axis=1)  # [u, 11]
        eff = np.where(lev >= 0, best[np.arange(len(u))[None, :], np.maximum(lev, 0)], -1)
        for j in range(N_T):
            if has[:, j].any():
                hits += (eff == j).astype(np.float32) @ l_u[:, j, :].astype(np.float32)
    return hits > 0


def _micro_f1(pred: np.ndarray, y: np.ndarray) -> float:
    tp = np.count_nonzero(pred & y)
    return float(f1_scores(tp, np.count_nonzero(pred), np.count_nonzero(y))[2])


def score_functions(a_fit, a_test, functions: Mapping[str, BSPLabels], chunk_units: int = 256
                    ) -> dict[str, BoardScore]:
    """Score one unit space against several BSP functions in one pass over its units."""
    a_fit, a_test = check_activations(a_fit, a_test)
    chunk = check_chunk(chunk_units)
    n_fit, n_units = a_fit.shape
    n_test = a_test.shape[0]
    if not functions:
        raise ConfigError("no BSP function to score; pass at least one")
    fits, tests, spans, start = [], [], {}, 0
    for name, labels in functions.items():
        y_fit, y_test, mask = check_labels(labels, n_fit, n_test, name)
        fits.append(y_fit[:, mask])
        tests.append(y_test[:, mask])
        spans[name] = (start, start + int(mask.sum()))
        start = spans[name][1]
    y_fit_all = np.concatenate(fits, axis=1)
    y_fit_f32 = y_fit_all.astype(np.float32)
    n_pos = y_fit_all.sum(axis=0)
    m = unit_max(a_fit)
    q_star = float((a_fit > 0).mean(axis=0).max())

    best_f1 = np.zeros((N_T, start))
    lab_units, lab_sets = [], []
    for s in range(0, n_units, chunk):
        tp, fire = fit_counts(levels(a_fit[:, s:s + chunk], m[s:s + chunk]), y_fit_f32)
        lab = np.zeros(tp.shape, dtype=bool)
        for i in range(N_T):  # one threshold at a time keeps the float64 temporaries small
            p, _, f1 = f1_scores(tp[:, i, :], fire[:, i, None], n_pos[None, :])
            np.maximum(best_f1[i], f1.max(axis=0), out=best_f1[i])
            lab[:, i, :] = (p >= PRECISION_BAR) & (tp[:, i, :] >= MIN_TRUE_POSITIVES)
        keep = np.flatnonzero(lab.any(axis=(1, 2)))
        lab_units.append(keep + s)
        lab_sets.append(lab[keep])
    lab_units = np.concatenate(lab_units)
    lab_all = np.concatenate(lab_sets) if lab_units.size else np.zeros((0, N_T, start), bool)

    alive = int(np.count_nonzero(m > 0))
    out = {}
    for (name, (c0, c1)), y_fit, y_test in zip(spans.items(), fits, tests):
        cov_t = best_f1[:, c0:c1].mean(axis=1)
        lab = lab_all[:, :, c0:c1]
        mine = lab.any(axis=(1, 2))
        units, lab = lab_units[mine], lab[mine]
        rec_t = np.zeros(N_T)
        n_lab = np.zeros(N_T, dtype=np.int64)
        for slot in range(N_T):
            on = lab.any(axis=2)[:, slot] if slot < N_T - 1 else np.ones(len(units), bool)
            n_lab[slot] = int(on.sum())
            if n_lab[slot]:
                pred = _predict_slot(a_test, m, units[on], lab[on], slot, chunk)
                rec_t[slot] = _micro_f1(pred, y_test)
        i_cov, i_rec = int(np.argmax(cov_t)), int(np.argmax(rec_t))
        out[name] = BoardScore(
            coverage=float(cov_t[i_cov]), coverage_threshold=float(THRESHOLDS[i_cov]),
            reconstruction=float(rec_t[i_rec]),
            reconstruction_threshold=float(THRESHOLDS[i_rec]),
            chance_coverage=_chance(q_star, y_fit),
            n_units=n_units, n_alive=alive, n_labelled=int(n_lab[i_rec]), n_cells=c1 - c0,
            coverage_per_threshold=cov_t, reconstruction_per_threshold=rec_t,
            labelled_per_threshold=n_lab)
    return out


def score_function(a_fit, a_test, labels: BSPLabels, chunk_units: int = 256) -> BoardScore:
    """Score one unit space against one BSP function (see :func:`score_functions`)."""
    return score_functions(a_fit, a_test, {"function": labels}, chunk_units)["function"]
