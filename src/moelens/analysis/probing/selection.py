"""Neuron ranking for k-sparse probing: |mean(a | y=1) - mean(a | y=0)| on the train split.

Raw activations, as in the paper (no standardisation), so that the k=1 neuron is the one whose
class-conditional means differ most in the model's own units. Ties are broken by neuron index
(stable sort), which makes the ranking deterministic.
"""

from __future__ import annotations

import numpy as np


def mean_difference(X: np.ndarray, y: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """|mean over positives - mean over negatives| per column of ``X`` ([n, D] -> [D]), over
    ``rows`` only when given. One matrix-vector product with a +1/n_pos, -1/n_neg contrast
    vector, so no copy of ``X`` is made (the product runs in X's dtype)."""
    y = np.asarray(y, dtype=bool)
    use = np.zeros(y.size, dtype=bool)
    use[slice(None) if rows is None else rows] = True
    pos, neg = use & y, use & ~y
    contrast = np.where(pos, 1.0 / max(pos.sum(), 1), 0.0) - np.where(neg, 1.0 / max(neg.sum(), 1), 0.0)
    X = np.asarray(X)
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    return np.abs(contrast.astype(X.dtype) @ X).astype(np.float64)


def top_neurons(X: np.ndarray, y: np.ndarray, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``k`` columns with the largest mean difference (over ``rows``), best first."""
    score = mean_difference(X, y, rows)
    order = np.argsort(-score, kind="stable")
    return order[: min(k, score.size)]
