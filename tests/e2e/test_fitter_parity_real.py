"""Fast fitter vs a converged reference on real captured activations, and an honest
``converged`` flag for the paper's saga protocol.

Captured units of tiny models are small (sd ~ 0.007): there saga stops by its own tolerance
after a few iterations, far from the optimum, which synthetic well-scaled data never shows.
The converged reference here is scikit-learn's lbfgs with a tight tolerance and no iteration
cap (the same objective: L2, C=1, balanced class weights, unpenalised intercept).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from clitools import run_cli

from moelens.analysis.probing import concepts as concept_glue
from moelens.analysis.probing import probe_units
from moelens.analysis.probing.dataset import layer_units
from moelens.analysis.probing.metrics import counts, prf
from moelens.store import ActivationStore

CONCEPTS = ["word_initial_capital", "contains_digit", "operator"]
KS = (1, 2, 4)


@pytest.fixture(scope="module")
def real_units(e2e_stores):
    """Prepared expert and dense-FFN units of both tiny models (no controls)."""
    units = []
    for name in ("moe", "dense"):
        store = ActivationStore.open(e2e_stores[f"store_{name}"])
        samples = [concept_glue.sample(store, c, 5000, 42) for c in concept_glue.resolve(CONCEPTS)]
        units += [u for layer in store.layers
                  for u in layer_units(store, layer, samples, seed=42, kmax=max(KS),
                                       baselines=False, null=False) if u.status == "ok"]
    assert len(units) >= 20
    return units


def _converged_f1(units) -> pd.Series:
    """F1 on the held-out split of a tightly converged lbfgs fit, per (unit index, k)."""
    from sklearn.linear_model import LogisticRegression

    out = {}
    for i, u in enumerate(units):
        for k in KS:
            m = LogisticRegression(solver="lbfgs", C=1.0, class_weight="balanced", tol=1e-12,
                                   max_iter=100000).fit(u.train_x[:, :k].astype(np.float64), u.train_y)
            pred = m.predict(u.held_x[:, :k].astype(np.float64)).astype(bool)
            out[(i, k)] = float(prf(*counts(pred, u.held_y))[2])
    return pd.Series(out)


def _paper_f1(units, fitter: str) -> pd.DataFrame:
    recs = []
    for i, u in enumerate(units):
        for r in probe_units([u], KS, fitter=fitter, seed=42):
            if r["selection"] == "paper":
                recs.append(dict(unit=i, k=r["k"], f1=r["f1"], converged=r["converged"]))
    return pd.DataFrame(recs).set_index(["unit", "k"])


def test_fast_fitter_matches_a_converged_reference(real_units):
    fast = _paper_f1(real_units, "newton")
    ref = _converged_f1(real_units)
    diff = (fast["f1"] - ref.reindex(fast.index)).abs()
    assert fast["converged"].all()
    assert diff.mean() <= 0.002 and diff.max() <= 0.02, diff.describe()


def test_saga_fits_far_from_the_optimum_are_flagged(real_units):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saga = _paper_f1(real_units, "saga")
    ref = _converged_f1(real_units)
    diff = (saga["f1"] - ref.reindex(saga.index)).abs()
    off = diff > 0.01
    assert off.sum() >= 3  # real activations do show saga stopping early
    assert not saga.loc[off, "converged"].any(), saga[off]
    assert (diff[saga["converged"].astype(bool)] <= 0.01).all()


def test_reference_run_reports_fits_that_did_not_converge(e2e_stores, tmp_path):
    out = tmp_path / "ref"
    proc = run_cli("probe", "--store", e2e_stores["store_moe"], "--out", out, "--concepts",
                   *CONCEPTS, "--ks", "1", "2", "--seeds", "42", "--fitter", "reference",
                   "--no-baselines", "--no-null", "--no-figures", "--bootstrap", "10")
    assert proc.returncode == 0, proc.stderr[-3000:]
    df = pd.read_parquet(out / "probe.parquet")
    fits = df[(df.status == "ok") & (df.selection == "paper")]
    n_bad = int((~fits.converged.astype(bool)).sum())
    summ = json.loads((out / "summary.json").read_text())
    assert n_bad > 0 and summ["fits_not_converged"] == n_bad
    assert f"{n_bad} of {len(fits)} saga fits did not converge" in proc.stdout
