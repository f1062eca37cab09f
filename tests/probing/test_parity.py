"""Fast path vs the paper's reference (scikit-learn saga) on the same prepared data, and the
Newton solver against a tightly converged scikit-learn solution of the same objective."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from moelens.analysis.probing import prepare, probe_units
from moelens.analysis.probing.fit_fast import newton_logreg
from moelens.analysis.probing.prepare import balanced_weights


def _units(seed=0, n_units=6):
    rng = np.random.default_rng(seed)
    out = []
    for u in range(n_units):
        n = 320 + 40 * u
        y = rng.random(n) < 0.35 + 0.05 * u
        X = rng.normal(size=(n, 96)).astype(np.float32)
        X[:, u] += (0.3 + 0.3 * u) * y  # from weak to strong
        X[:, 40:48] += 0.25 * y[:, None]
        meta = dict(concept="c", group="g", layer=0, space="expert", expert=u, control="none", seed=0)
        out.append(prepare(X, y, meta, seed=7))
    return out


def test_fast_matches_reference_f1():
    prepared = _units()
    fast = pd.DataFrame(probe_units(prepared, fitter="newton"))
    ref = pd.DataFrame(probe_units(prepared, fitter="saga"))
    assert len(fast) == len(ref) == 6 * 7 * 3
    assert fast.converged.all()
    diff = (fast.f1 - ref.f1).abs()
    assert diff.mean() <= 0.01, diff.describe()
    assert set(ref.fitter) == {"saga"} and set(fast.fitter) == {"newton"}


@pytest.mark.parametrize("k", [1, 8, 32])
def test_newton_reaches_sklearn_optimum(k):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(k)
    n = 400
    y = rng.random(n) < 0.3
    X = rng.gamma(1.5, 2.0, size=(n, k)) + 1.5 * y[:, None] * (rng.random(k) < 0.5)  # unscaled
    ref = LogisticRegression(solver="lbfgs", C=1.0, class_weight="balanced", tol=1e-10,
                             max_iter=100000).fit(X, y)
    A = torch.from_numpy(np.concatenate([np.ones((n, 1)), X], axis=1))[None]
    theta, done = newton_logreg(A, torch.from_numpy(y.astype(np.float64))[None],
                                torch.from_numpy(balanced_weights(y))[None])
    assert bool(done[0])
    np.testing.assert_allclose(theta[0, 1:].numpy(), ref.coef_[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(theta[0, 0].item(), ref.intercept_[0], rtol=1e-4, atol=1e-5)


def test_convergence_flag_is_about_the_gradient_not_the_iteration_count():
    """Features as small as captured activations (sd ~ 0.007): saga stops by its own tolerance
    long before max_iter, far from the optimum; the flag must say so, for both fitters."""
    import warnings

    from sklearn.linear_model import LogisticRegression

    from moelens.analysis.probing.fit_reference import MAX_ITER, fit_one
    from moelens.analysis.probing.optimality import converged_one

    rng = np.random.default_rng(5)
    n = 600
    y = rng.random(n) < 0.4
    X = 0.007 * (rng.normal(size=(n, 4)) + 0.8 * y[:, None])
    model, ok = fit_one(X, y)
    assert model.n_iter_[0] < MAX_ITER and not ok  # stopped early, and flagged
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tight = LogisticRegression(solver="lbfgs", C=1.0, class_weight="balanced", tol=1e-12,
                                   max_iter=100000).fit(X, y)
    assert converged_one(X, y, balanced_weights(y), tight.coef_[0], tight.intercept_[0])
    A = torch.from_numpy(np.concatenate([np.ones((n, 1)), X], axis=1))[None]
    yt, st = torch.from_numpy(y.astype(np.float64))[None], torch.from_numpy(balanced_weights(y))[None]
    far = torch.tensor([[3.0, 50.0, -50.0, 50.0, -50.0]], dtype=torch.float64)
    _, done = newton_logreg(A, yt, st, theta0=far, max_iter=1)  # cut off far from the optimum
    assert not bool(done[0])
    theta, done = newton_logreg(A, yt, st)
    assert bool(done[0])
    np.testing.assert_allclose(theta[0, 1:].numpy(), tight.coef_[0], rtol=1e-5)
