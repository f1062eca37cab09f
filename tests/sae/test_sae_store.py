"""An SAE saved in a store is a unit space like any other: listed, sized, read, verified.

The numpy encoder the store uses must give exactly what the trained torch modules give
(sparsify's ``SparseCoder.encode`` for TopK, our ReLU SAE's forward), to float tolerance.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from clitools import run_cli

from moelens.analysis.sae import models
from moelens.errors import StoreError
from moelens.store import ActivationStore, verify
from moelens.store.derived import Encoder


def _torch_latents(result, kind: str, x: np.ndarray) -> np.ndarray:
    """Latents from the saved weights through the torch modules (not the store's numpy code)."""
    from safetensors.torch import load_model

    if kind == "topk":
        coder = models.sparsify().SparseCoder.load_from_disk(result.path)  # sparsify's own loader
        acts, idx, _ = coder.encode(torch.from_numpy(x))
        return torch.zeros(x.shape[0], coder.num_latents).scatter_(1, idx, acts).detach().numpy()
    sae = models.ReluL1Sae(x.shape[1], result.settings["latents"])
    load_model(sae, str(result.path / "sae.safetensors"))
    return sae.encode(torch.from_numpy(x)).detach().numpy()


@pytest.mark.parametrize("space, kind", [("sae", "topk"), ("sae_l1", "relu_l1")])
def test_derived_space_reads_like_a_captured_one(trained, space, kind):
    store = ActivationStore.open(trained.root)
    assert store.spaces(1) == ["ffn", "resid", "sae", "sae_l1"]
    assert store.spaces(0) == ["expert", "expert_gate"]
    assert store.width(1, space) == 128
    result = trained.topk if kind == "topk" else trained.relu
    tokens = np.array([4000, 3, 17, 3, 1030, 2047])  # out of order, across shards, a repeat
    got = store.dense(1, space, tokens)
    want = _torch_latents(result, kind, trained.resid[tokens])
    assert got.dtype == np.float32 and got.shape == (6, 128)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    assert (got[1] == got[3]).all()
    if kind == "topk":
        assert ((got != 0).sum(axis=1) <= 3).all()

    everything = store.dense(1, space)
    assert everything.shape == (store.n_tokens, 128)
    np.testing.assert_array_equal(everything[tokens], got)
    stats = store.unit_stats(1, space)
    np.testing.assert_allclose(stats["firing_rate"], (everything > 0).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats["max"], everything.max(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats["mean"], everything.mean(axis=0), rtol=1e-4, atol=1e-6)
    assert (stats["dead"] == ~(everything > 0).any(axis=0)).all()


@pytest.mark.parametrize("encoder, k", [("topk", 4), ("topk", 40), ("relu", None)])
def test_numpy_encoder_equals_the_torch_modules(encoder, k, one_thread):
    """Random weights, random inputs: the store's Encoder against SparseCoder.encode / ReluL1Sae."""
    gen = torch.Generator().manual_seed(1)
    kind = "topk" if encoder == "topk" else "relu_l1"
    model = models.build(kind, 24, 40, k or 1, gen)
    with torch.no_grad():
        model.encoder.bias.normal_(generator=gen)
        model.b_dec.normal_(generator=gen)
    x = torch.randn(300, 24, generator=gen) * 3
    want = models.latents(model, kind, x).detach().numpy()
    w = models.weights(model)
    enc = Encoder(w["encoder.weight"].numpy(), w["encoder.bias"].numpy(), w["b_dec"].numpy(), encoder, k)
    got = enc.encode(x.numpy())
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    if encoder == "topk" and k < 40:
        assert ((got != 0).sum(axis=1) == k).all()


def test_verify_checks_the_derived_files(trained, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(trained.root, root)
    assert verify(root).ok
    ActivationStore.open(root).verify()
    before = verify(root).n_files
    weights = root / "derived/L001/sae/sae.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    report = verify(root)
    assert not report.ok and report.problems[0].file == "derived/L001/sae/sae.safetensors"
    assert before > 20
    with pytest.raises(StoreError, match="sae.safetensors"):
        ActivationStore.open(root).verify()
    with pytest.raises(StoreError, match="corrupt"):
        ActivationStore.open(root).dense(1, "sae", [0])
    ActivationStore.open(root).dense(1, "sae_l1", [0])  # the other SAE is intact
    proc = run_cli("store", "verify", str(root))
    assert proc.returncode == 2 and "derived/L001/sae/sae.safetensors" in proc.stderr


def test_a_derived_space_of_another_capture_is_not_listed(trained, tmp_path):
    root = tmp_path / "store"
    shutil.copytree(trained.root, root)
    desc = root / "derived/L001/sae_l1/derived.json"
    info = json.loads(desc.read_text())
    desc.write_text(json.dumps({**info, "store_fingerprint": "another capture"}))
    store = ActivationStore.open(root)
    assert store.spaces(1) == ["ffn", "resid", "sae"]
    with pytest.raises(StoreError, match="another capture"):
        store.dense(1, "sae_l1", [0])
    assert [p.file for p in verify(root).problems] == ["derived/L001/sae_l1/derived.json"]


def test_encoding_in_chunks_changes_nothing(trained, monkeypatch):
    from moelens.store import derived

    whole = ActivationStore.open(trained.root).dense(1, "sae")
    monkeypatch.setattr(derived, "CHUNK_ELEMENTS", 1)  # 64 tokens per chunk: 64 chunks
    tokens = np.arange(trained.resid.shape[0])[::-1].copy()
    np.testing.assert_array_equal(ActivationStore.open(trained.root).dense(1, "sae", tokens), whole[tokens])


@pytest.mark.parametrize("edit", ["not json", '{"format": "moelens-derived-space", "version": 1, '
                                  '"space": "sae", "layer": 1, "files": [1, 2]}', "[]"])
def test_a_malformed_descriptor_is_a_store_error_not_a_crash(trained, tmp_path, edit):
    root = tmp_path / "store"
    shutil.copytree(trained.root, root)
    (root / "derived/L001/sae/derived.json").write_text(edit)
    store = ActivationStore.open(root)
    assert "sae" not in store.spaces(1) and "sae_l1" in store.spaces(1)
    with pytest.raises(StoreError, match="derived.json"):
        store.dense(1, "sae", [0])
    assert [p.file for p in verify(root).problems] == ["derived/L001/sae/derived.json"]
