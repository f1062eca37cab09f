"""A capture read back equals what the model computes, under every routing semantics."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from moelens import cli
from moelens.store import ActivationStore


def _reference(model_dir, store):
    """Routing, expert rows, expert outputs and residuals recomputed window by window, unpadded."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokens, pos = store.tokens(), store.positions()
    starts = list(np.flatnonzero(pos == 0)) + [tokens.size]
    ref = {l: {"x": [], "ids": [], "w": [], "resid": []} for l in range(3)}
    hooks = []
    for l, block in enumerate(model.model.layers):
        hooks.append(block.mlp.register_forward_pre_hook(lambda m, a, l=l: ref[l]["x"].append(a[0][0])))
        hooks.append(block.mlp.gate.register_forward_hook(
            lambda m, a, o, l=l: ref[l]["ids"].append(o[2]) or ref[l]["w"].append(o[1])))
        hooks.append(block.register_forward_hook(lambda m, a, o, l=l: ref[l]["resid"].append(o[0])))
    with torch.no_grad():
        for a, b in itertools.pairwise(starts):
            model(input_ids=torch.from_numpy(tokens[a:b])[None])
    for h in hooks:
        h.remove()
    out = {}
    torch.set_grad_enabled(False)
    for l, r in ref.items():
        x = torch.cat(r["x"])
        experts = model.model.layers[l].mlp.experts
        gate, up = torch.einsum("nh,eih->nei", x, experts.gate_up_proj).chunk(2, dim=-1)
        hidden = experts.act_fn(gate) * up  # [n, E, I]: every expert on every token
        norms = torch.einsum("nei,ehi->neh", hidden, experts.down_proj).norm(dim=-1)
        out[l] = {"ids": torch.cat(r["ids"]).numpy(), "w": torch.cat(r["w"]).numpy(),
                  "hidden": hidden.numpy(), "norm": norms.numpy(), "resid": torch.cat(r["resid"]).numpy()}
    torch.set_grad_enabled(True)
    return out


@pytest.fixture(scope="module")
def fp32_store(tmp_path_factory, model_dir, corpus_files):
    from store_helpers import ADAPTER

    out = tmp_path_factory.mktemp("s") / "store"
    args = ["capture", "--model", str(model_dir), "--corpus", *map(str, corpus_files), "--ctx", "40",
            "--batch_size", "3", "--shard_tokens", "64", "--quiet", "--dtype", "fp32", "--out", str(out)]
    assert cli.main(args + (["--adapter", ADAPTER] if ADAPTER else [])) == 0
    store = ActivationStore.open(out)
    return store, _reference(model_dir, store)


def test_tokens_offsets_and_documents(fp32_store, model_dir):
    from transformers import AutoTokenizer

    store, _ = fp32_store
    tok = AutoTokenizer.from_pretrained(model_dir)
    docs, ids, doc_ids, offs = store.documents(), store.tokens(), store.doc_ids(), store.offsets()
    assert store.n_tokens == ids.size == doc_ids.size > 200
    assert len(docs) == 4 and docs[1] == "a short one."
    chars = tok.convert_ids_to_tokens(ids.tolist())
    assert all(docs[d][a:b] == c for d, (a, b), c in zip(doc_ids, offs, chars))
    assert (ids != tok.pad_token_id).all()  # pads never recorded
    assert store.positions().max() == 39 and len(store.manifest["shards"]) > 3


def test_routing_expert_rows_and_semantics(fp32_store):
    store, ref = fp32_store
    for l in store.layers:
        r = ref[l]
        ids, w = store.routing(l)
        np.testing.assert_array_equal(ids, r["ids"])
        np.testing.assert_allclose(w, r["w"], atol=1e-6)
        for e in range(store.num_experts(l)):
            routed = np.flatnonzero((ids == e).any(axis=1))
            tok, acts = store.expert(l, e)
            np.testing.assert_array_equal(tok, routed)
            np.testing.assert_allclose(acts, r["hidden"][routed, e], atol=1e-5)
            weight = (w * (ids == e)).sum(axis=1)
            tz, zf = store.expert(l, e, semantics="zero_filled")
            tg, ga = store.expert(l, e, semantics="gated")
            assert tz.size == tg.size == store.n_tokens
            expect = np.zeros_like(zf)
            expect[routed] = r["hidden"][routed, e]
            np.testing.assert_allclose(zf, expect, atol=1e-5)
            np.testing.assert_allclose(ga, expect * weight[:, None], atol=1e-5)
        sel = np.array([5, 0, 77, 3])
        tg, ga = store.expert(l, 2, semantics="gated", tokens=sel)
        np.testing.assert_array_equal(tg, sel)
        np.testing.assert_allclose(ga, store.expert(l, 2, semantics="gated")[1][sel])
        np.testing.assert_allclose(store.dense(l, "resid"), r["resid"], atol=1e-5)
        np.testing.assert_allclose(store.dense(l, "resid", tokens=sel), r["resid"][sel], atol=1e-5)
        gate = store.dense(l, "expert_gate")
        np.testing.assert_allclose(np.take_along_axis(gate, ids, 1), w, atol=1e-6)
        assert ((gate != 0).sum(axis=1) == store.top_k(l)).all()
        expect_out = np.zeros_like(gate)
        np.put_along_axis(expect_out, ids, w * np.take_along_axis(r["norm"], ids, 1), axis=1)
        np.testing.assert_allclose(store.dense(l, "expert_out"), expect_out, rtol=1e-5, atol=1e-6)


def test_unit_stats(fp32_store):
    store, _ = fp32_store
    stats = store.unit_stats(1, "expert")
    E, D = store.num_experts(1), store.width(1, "expert")
    assert stats["firing_rate"].shape == (E, D)
    _, acts = store.expert(1, 4)
    np.testing.assert_allclose(stats["max"][4], acts.max(0), rtol=1e-6)
    np.testing.assert_allclose(stats["mean"][4], acts.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stats["firing_rate"][4], (acts != 0).mean(0))
    one = store.unit_stats(1, "expert", expert=4)
    np.testing.assert_array_equal(one["dead"], stats["dead"][4])
    resid = store.unit_stats(0, "resid")
    np.testing.assert_allclose(resid["mean"], store.dense(0, "resid").mean(0), rtol=1e-4, atol=1e-6)
    assert store.unit_stats(0, "expert_gate")["firing_rate"].sum() == pytest.approx(2.0)


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_half_dtypes_and_coo_layout(fp32_store, tmp_path, capture_args, dtype):
    from store_helpers import ADAPTER

    store32, _ = fp32_store
    args = [a for a in capture_args if a != ADAPTER]
    args = args[:-1] if args[-1] == "--adapter" else args
    sparse = dtype == "bf16" and ADAPTER is not None  # the COO layout, forced by a "ReLU" adapter
    adapter = ["--adapter", "olmoe_standin:make_sparse_adapter" if sparse else ADAPTER] if ADAPTER else []
    assert cli.main(["capture", *args, *adapter, "--dtype", dtype, "--layers", "1",
                     "--spaces", "expert", "--out", str(tmp_path / "h")]) == 0
    store = ActivationStore.open(tmp_path / "h")
    assert store.layers == [1] and store.spaces(1) == ["expert"]
    if sparse:
        assert {r["expert_layout"]["1"] for r in store.manifest["shards"]} == {"coo"}
    rtol = 1e-2 if dtype == "bf16" else 1e-3
    for e in range(store.num_experts(1)):
        t16, a16 = store.expert(1, e)
        t32, a32 = store32.expert(1, e)
        np.testing.assert_array_equal(t16, t32)
        np.testing.assert_allclose(a16, a32, rtol=rtol, atol=rtol * np.abs(a32).max())
