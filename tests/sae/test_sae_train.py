"""Training: the loss falls, and on data made of known sparse directions the SAE finds them.

The store's ``resid`` at layer 1 is built from 64 random unit directions in 32 dimensions, each
token a combination of 3 of them with coefficients in [1, 2] plus noise of 0.01 per coordinate
(``sae_store.sparse_data``). A direction counts as recovered when some decoder row has cosine
>= 0.9 with it. Both kinds recover all 64 on this seed; the assertion asks for 58 (90%).
"""

from __future__ import annotations

import json

import numpy as np
from sae_store import N_DIRS, topk_config
from safetensors.numpy import load_file


def _recovered(result, dirs: np.ndarray) -> np.ndarray:
    """Best cosine of each true direction with any decoder row (rows are unit norm)."""
    w_dec = load_file(str(result.path / "sae.safetensors"))["W_dec"]
    np.testing.assert_allclose(np.linalg.norm(w_dec, axis=1), 1.0, rtol=1e-5)
    return (dirs @ w_dec.T).max(axis=1)


def test_topk_sae_recovers_the_known_directions(trained):
    best = _recovered(trained.topk, trained.dirs)
    print(f"topk: {(best >= 0.9).sum()} of {N_DIRS} directions recovered at cosine >= 0.9")
    assert (best >= 0.9).sum() >= 58
    held = trained.topk.metrics["heldout"]
    assert held["l0"] <= 3 + 1e-9 and held["explained_variance"] > 0.9


def test_relu_l1_sae_recovers_the_known_directions(trained):
    best = _recovered(trained.relu, trained.dirs)
    print(f"relu_l1: {(best >= 0.9).sum()} of {N_DIRS} directions recovered at cosine >= 0.9")
    assert (best >= 0.9).sum() >= 58
    held = trained.relu.metrics["heldout"]
    assert held["explained_variance"] > 0.8 and held["l0"] < 12  # sparse, though not exactly 3


def test_an_untrained_dictionary_recovers_nothing(trained):
    """The bar above means something: random unit rows of the same shape recover none."""
    rng = np.random.default_rng(5)
    w = rng.normal(size=(128, trained.dirs.shape[1]))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    assert ((trained.dirs @ w.T).max(axis=1) >= 0.9).sum() == 0


def test_reconstruction_loss_falls(trained):
    for result in (trained.topk, trained.relu):
        curve = result.metrics["curve"]
        assert curve[0]["step"] == 0 and curve[-1]["step"] == result.settings["steps"]
        held = [p["heldout_fvu"] for p in curve]
        assert held[-1] < 0.25 * held[0], held
        train = [p["fvu"] for p in curve[1:]]
        assert train[-1] < 0.5 * train[0], train
        # and the saved files say the same as the returned metrics
        saved = json.loads((result.path / "metrics.json").read_text())
        assert saved["heldout"] == result.metrics["heldout"]
        rows = (result.path / "curve.csv").read_text().splitlines()
        assert rows[0].startswith("step,fvu,aux,heldout_fvu") and len(rows) == len(curve) + 1


def test_a_finished_sae_is_skipped_and_overwrite_retrains(trained, tmp_path):
    import shutil

    from moelens.analysis.sae import train_sae

    root = tmp_path / "store"
    shutil.copytree(trained.root, root)
    weights = root / "derived/L001/sae/sae.safetensors"
    stamp = weights.stat().st_mtime_ns
    again = train_sae(topk_config(root))
    assert again.skipped and weights.stat().st_mtime_ns == stamp
    assert again.metrics["heldout"] == trained.topk.metrics["heldout"]
    redo = train_sae(topk_config(root, steps=20, overwrite=True))
    assert not redo.skipped and redo.settings["steps"] == 20
    assert json.loads((root / "derived/L001/sae/config.json").read_text())["settings"]["steps"] == 20


def test_reading_in_smaller_chunks_trains_the_same_sae(trained, tmp_path):
    """--chunk_tokens bounds memory only: the batches, and so the weights, do not change."""
    import shutil

    from moelens.analysis.sae import train_sae

    root = tmp_path / "store"
    shutil.copytree(trained.root, root)
    small = train_sae(topk_config(root, name="sae_chunks", chunk_tokens=300))
    a = load_file(str(small.path / "sae.safetensors"))
    b = load_file(str(trained.topk.path / "sae.safetensors"))
    assert all(np.array_equal(a[k], b[k]) for k in b)
