"""Neuron ranking for k-sparse probing: |mean(a | y=1) - mean(a | y=0)| on the train split.

Raw activations, as in the paper (no standardisation), so that the k=1 neuron is the one whose
class-conditional means differ most in the model's own units. Ties are broken by neuron index
(stable sort), which makes the ranking deterministic.
"""

from __future__ import annotations

import numpy as np


def mean_difference(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|mean over positives - mean over negatives| per column of ``X`` ([n, D] -> [D])."""
    y = np.asarray(y, dtype=bool)
    X = np.asarray(X, dtype=np.float64)
    return np.abs(X[y].mean(axis=0) - X[~y].mean(axis=0))


def top_neurons(X: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` columns with the largest mean difference, best first."""
    score = mean_difference(X, y)
    order = np.argsort(-score, kind="stable")
    return order[: min(k, score.size)]
