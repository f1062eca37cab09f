"""Reference path: the paper's protocol with scikit-learn, one fit per (unit, k).

``LogisticRegression(solver="saga", max_iter=500, C=1, class_weight="balanced")`` on the raw
top-k activations. It minimises the same objective as :mod:`.fit_fast`; when saga converges both
reach the same optimum (F1 equal up to points on the decision boundary). saga stops by its own
tolerance on the change of the weights, which small unscaled activations (sd ~ 0.007 on real
units) meet after a few iterations far from the optimum, or at ``max_iter``. Every fit is
therefore checked at the point where it stopped with the relative gradient test of
:mod:`.optimality` (the one the fast fitter iterates to); fits that fail it are flagged
``converged=False`` (sklearn's ConvergenceWarning is not printed), so the table says exactly
where the paper's protocol and the corrected one differ.
"""

from __future__ import annotations

import warnings

import numpy as np

from moelens.analysis.probing.metrics import counts as confusion
from moelens.analysis.probing.optimality import converged_one
from moelens.analysis.probing.prepare import Prepared, balanced_weights

MAX_ITER = 500
"""The paper's saga iteration budget."""


def fit_one(x: np.ndarray, y: np.ndarray, C: float = 1.0, seed: int = 42):
    """One paper-protocol fit; returns (model, converged by the test of :mod:`.optimality`)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(solver="saga", max_iter=MAX_ITER, C=C, class_weight="balanced",
                               random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    ok = converged_one(x, y, balanced_weights(y), model.coef_[0], model.intercept_[0], C)
    return model, ok


def fit_counts(prepared: list[Prepared], ks: tuple[int, ...], C: float = 1.0,
               seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """Same contract as :func:`moelens.analysis.probing.fit_fast.fit_counts`."""
    counts = np.zeros((len(prepared), len(ks), 2, 3), dtype=np.int64)
    converged = np.zeros((len(prepared), len(ks)), dtype=bool)
    for i, p in enumerate(prepared):
        for j, k in enumerate(ks):
            if p.train_x.shape[1] < k:
                continue
            model, converged[i, j] = fit_one(p.train_x[:, :k], p.train_y, C=C, seed=seed)
            pred = model.predict(p.held_x[:, :k]).astype(bool)
            for h, m in enumerate((p.held_is_val, ~p.held_is_val)):
                counts[i, j, h] = confusion(pred[m], p.held_y[m])
    return counts, converged
