"""A direct, loop-based implementation of the board-game metrics, for tests and the benchmark.

It follows ``boardgame.md`` line by line — loops over thresholds, units and cells, numpy only
over positions — and shares nothing with :mod:`.metrics` but the constants, so agreement between
the two checks the vectorised tricks (levels, sparse products, chunking). It is slow on purpose;
never use it for real scoring. The last reconstruction slot follows the reading documented in
:mod:`.metrics`: per unit, the highest threshold its activation exceeds among those at which it
is labelled.
"""

from __future__ import annotations

import numpy as np

from moelens.analysis.boardgame.inputs import (
    EPS, MIN_TRUE_POSITIVES, PRECISION_BAR, THRESHOLDS, WILSON_Z,
)


def _prf(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    p = tp / (tp + fp + EPS)
    r = tp / (tp + fn + EPS)
    return p, r, 2 * p * r / (p + r + EPS)


def _wilson(k: float, n: float) -> float:
    """Wilson score lower bound of k successes in n trials at z = WILSON_Z."""
    if n == 0:
        return 0.0
    p, z = k / n, WILSON_Z
    return (p + z * z / (2 * n) - z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (
        1 + z * z / n)


def reference_scores(a_fit, a_test, y_fit, y_test, cell_mask, labelling: str = "paper") -> dict:
    """Coverage and reconstruction of one function, as plain floats and lists.

    ``labelling="paper"``: precision ≥ 0.95 and ≥ 10 true positives; ``"corrected"`` also asks
    that the Wilson lower bound (z = WILSON_Z) of the precision exceed the cell's base rate on
    the fitting positions."""
    a_fit = np.asarray(a_fit, dtype=np.float32)
    a_test = np.asarray(a_test, dtype=np.float32)
    cells = [g for g in range(len(cell_mask)) if cell_mask[g]]
    n_units = a_fit.shape[1]
    m = [np.float32(np.max(np.abs(a_fit[:, f]))) for f in range(n_units)]
    n_t = len(THRESHOLDS)

    coverage_t = []
    labels = {}  # (t index, unit) -> list of cells
    for i, t in enumerate(THRESHOLDS):
        best = {g: 0.0 for g in cells}
        for f in range(n_units):
            phi = a_fit[:, f] > np.float32(t) * m[f]
            for g in cells:
                yg = y_fit[:, g]
                tp = float(np.sum(phi & yg))
                fp = float(np.sum(phi)) - tp
                fn = float(np.sum(yg)) - tp
                p, _, f1 = _prf(tp, fp, fn)
                best[g] = max(best[g], f1)
                ok = p >= PRECISION_BAR and tp >= MIN_TRUE_POSITIVES
                if ok and labelling == "corrected":
                    ok = _wilson(tp, tp + fp) > float(np.sum(yg)) / len(yg)
                if ok:
                    labels.setdefault((i, f), []).append(g)
        coverage_t.append(sum(best.values()) / len(cells))

    recon_t = []
    for i in range(n_t):
        pred = np.zeros(y_test.shape, dtype=bool)
        if i < n_t - 1:
            for f in range(n_units):
                phi = a_test[:, f] > np.float32(THRESHOLDS[i]) * m[f]
                for g in labels.get((i, f), []):
                    pred[:, g] |= phi
        else:
            for f in range(n_units):
                mine = [j for j in range(n_t) if (j, f) in labels]
                for x in range(a_test.shape[0]):
                    exceeded = [j for j in mine if a_test[x, f] > np.float32(THRESHOLDS[j]) * m[f]]
                    if exceeded:
                        for g in labels[(max(exceeded), f)]:
                            pred[x, g] = True
        tp = fp = fn = 0.0
        for g in cells:
            tp += float(np.sum(pred[:, g] & y_test[:, g]))
            fp += float(np.sum(pred[:, g] & ~y_test[:, g]))
            fn += float(np.sum(~pred[:, g] & y_test[:, g]))
        recon_t.append(_prf(tp, fp, fn)[2])

    return {"coverage_per_threshold": coverage_t, "reconstruction_per_threshold": recon_t,
            "coverage": max(coverage_t), "reconstruction": max(recon_t),
            "n_alive": sum(1 for v in m if v > 0)}
