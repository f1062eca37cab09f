"""Planted ground truth on plain arrays: the core finds what was put there, and the controls
keep a pure-noise concept at chance while the paper's best-of-many number is inflated."""

from __future__ import annotations

import numpy as np
import pandas as pd

from moelens.analysis.probing import controls, prepare, probe_units, table


def _frame(prepared, ks=(1, 2, 4, 8, 16, 32, 64)):
    return table.to_frame(probe_units(prepared, ks), "synthetic", "routed")


def test_single_neuron_concept_found_at_k1():
    rng = np.random.default_rng(0)
    prepared = []
    for layer in range(2):
        for e in range(4):
            n = 600
            y = rng.random(n) < 0.4
            X = rng.normal(size=(n, 32)).astype(np.float32)
            if (layer, e) == (1, 2):
                X[:, 5] = y * 2.0 + rng.normal(scale=0.2, size=n)  # fires exactly on the concept
            meta = dict(concept="c", group="g", layer=layer, space="expert", expert=e,
                        control="none", seed=0)
            prepared.append(prepare(X, y, meta, seed=0))
    assert prepared[6].neurons[0] == 5
    df = _frame(prepared)
    paper = df[(df.selection == "paper") & (df.k == 1)]
    best = paper.loc[paper.f1.idxmax()]
    assert (best.layer, best.expert) == (1, 2) and best.f1 >= 0.95
    assert paper[paper.expert != 2].f1.max() < 0.8
    stats = controls.concept_stats(df)
    k1 = stats[stats.k == 1].iloc[0]
    assert k1.val_selected_test_f1 >= 0.95 and k1.experts_within_95 == 1


def test_spread_concept_needs_k8():
    rng = np.random.default_rng(1)
    n = 2400
    y = rng.random(n) < 0.5
    X = rng.normal(size=(n, 64)).astype(np.float32)
    X[:, 10:18] += 1.3 * y[:, None]  # eight weakly informative neurons, sum-like
    meta = dict(concept="spread", group="g", layer=0, space="ffn", expert=-1, control="none", seed=0)
    df = _frame([prepare(X, y, meta, seed=0)])
    f1 = df[df.selection == "paper"].set_index("k").f1
    assert f1[8] >= 0.95
    assert all(f1[k] < 0.95 for k in (1, 2, 4)), f1.to_dict()
    assert f1[1] < f1[2] < f1[4] < f1[8]


def test_noise_concept_controls_stay_at_chance_while_max_is_inflated():
    rng = np.random.default_rng(2)
    prepared = []
    for concept in range(4):
        for layer in range(4):
            for e in range(16):
                n = 200
                y = np.arange(n) < n // 2
                X = rng.normal(size=(n, 16)).astype(np.float32)  # no signal at all
                meta = dict(concept=f"noise{concept}", group="g", layer=layer, space="expert",
                            expert=e, control="none", seed=0)
                prepared.append(prepare(X, y, meta, seed=concept))
    df = _frame(prepared, ks=(1, 8))
    stats = controls.concept_stats(df)
    mean = stats.groupby("k")[["best_unit_f1", "val_selected_test_f1",
                               "mean_expert_f1_at_best_layer"]].mean()
    for k in (1, 8):
        assert 0.4 <= mean.loc[k, "val_selected_test_f1"] <= 0.67, mean
        assert mean.loc[k, "best_unit_f1"] >= 0.62, mean  # the best of 64 noise cells
        assert mean.loc[k, "best_unit_f1"] - mean.loc[k, "val_selected_test_f1"] >= 0.1
        assert abs(mean.loc[k, "mean_expert_f1_at_best_layer"] - 0.5) < 0.12


def test_not_enough_samples_and_k_over_width_rows():
    rng = np.random.default_rng(3)
    y = np.arange(120) < 40  # 40 positives < 50
    meta = dict(concept="c", group="g", layer=0, space="expert", expert=0, control="none", seed=0)
    few = prepare(rng.normal(size=(120, 8)), y, meta, seed=0)
    narrow = prepare(rng.normal(size=(200, 4)), np.arange(200) < 100, dict(meta, expert=1), seed=0)
    df = _frame([few, narrow], ks=(1, 4, 8))
    a = df[df.expert == 0]
    assert set(a.status) == {"not enough samples"} and a.f1.isna().all() and len(a) == 3
    assert (a.n_pos == 40).all() and (a.n_neg == 80).all()
    b = df[df.expert == 1]
    assert set(b[b.k == 8].status) == {"k exceeds width"} and b[b.k == 8].f1.isna().all()
    assert b[b.k <= 4].f1.notna().all()
    assert list(df.columns) == table.COLUMNS
    assert isinstance(df, pd.DataFrame)
