"""Precision, recall and F1 of the positive class from confusion counts.

Zero denominators give 0, as scikit-learn's ``zero_division`` default does (e.g. a probe that
never predicts the positive class has precision 0, recall 0, F1 0).
"""

from __future__ import annotations

import numpy as np


def prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Element-wise (precision, recall, f1) for arrays of counts."""
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
        recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    return precision, recall, f1


def counts(pred: np.ndarray, y: np.ndarray) -> tuple[int, int, int]:
    """(tp, fp, fn) of boolean predictions against boolean labels."""
    pred, y = np.asarray(pred, dtype=bool), np.asarray(y, dtype=bool)
    return int((pred & y).sum()), int((pred & ~y).sum()), int((~pred & y).sum())
