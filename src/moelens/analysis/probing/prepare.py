"""Stage 1 of probing, per unit: check class counts, split, rank neurons on train, keep the best.

Apart from :mod:`.core` (which fits) so that the fitters can take a :class:`Prepared` without
importing the module that calls them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moelens.analysis.probing.selection import top_neurons
from moelens.analysis.probing.splits import stratified_split

OK = "ok"
NOT_ENOUGH = "not enough samples"
MIN_PER_CLASS = 50
"""The paper's minimum number of positives and of negatives for a unit to be probed."""


@dataclass
class Prepared:
    """One unit's dataset reduced to what the fitters need."""

    meta: dict[str, Any]
    status: str
    n_pos: int
    n_neg: int
    width: int
    train_x: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0), np.float32))
    train_y: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, bool))
    held_x: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0), np.float32))
    held_y: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, bool))
    held_is_val: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, bool))
    neurons: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int64))


def prepare(X: np.ndarray, y: np.ndarray, meta: dict[str, Any], seed: int, kmax: int = 64,
            min_per_class: int = MIN_PER_CLASS) -> Prepared:
    """Split, rank neurons on train and keep the ``kmax`` best columns of one unit's data."""
    y = np.asarray(y, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    width = int(X.shape[1]) if X.ndim == 2 else 0
    if n_pos < min_per_class or n_neg < min_per_class or width == 0:
        return Prepared(meta, NOT_ENOUGH, n_pos, n_neg, width)
    split = stratified_split(y, seed)
    neurons = top_neurons(X, y, kmax, rows=split.train)
    cols = np.asarray(X[:, neurons], dtype=np.float32)
    held = split.held_out
    return Prepared(
        meta, OK, n_pos, n_neg, width,
        train_x=np.ascontiguousarray(cols[split.train]), train_y=y[split.train],
        held_x=np.ascontiguousarray(cols[held]),
        held_y=y[held], held_is_val=np.arange(held.size) < split.val.size, neurons=neurons,
    )


def balanced_weights(y: np.ndarray) -> np.ndarray:
    """scikit-learn's ``class_weight="balanced"``: n / (2 * n_class) for each sample's class."""
    y = np.asarray(y, dtype=bool)
    n, n1 = y.size, int(y.sum())
    return np.where(y, n / (2.0 * n1), n / (2.0 * (n - n1)))
