"""Feed-forward layers: wide view, observer hook, statistics, and the dense activations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from model_helpers import one_thread, tiny_config, tiny_layer  # noqa: F401 (autouse fixture)

from moelens.models.ffn import DenseMLP
from moelens.models.routers import load_balancing_loss


@pytest.mark.parametrize("router,act,bias", [("softmax", "gelu", True), ("sparsity", "relu", False),
                                             ("sparsity", "silu", True)])
def test_wide_view_reproduces_layer_output(router, act, bias):
    layer = tiny_layer(router=router, expert_act=act, bias=bias).eval()
    x = torch.randn(3, 5, 16)
    z_gated, z_ungated = layer.wide_view(x)
    M, D = layer.num_experts, layer.expert_width
    assert z_gated.shape == z_ungated.shape == (15, M * D)
    w_cat = layer.decoder_cat()
    assert w_cat.shape == (16, M * D)
    y = z_gated @ w_cat.t() + (layer.b_dec if bias else 0)
    torch.testing.assert_close(y, layer(x).reshape(15, 16), atol=1e-5, rtol=0)
    # gated = ungated * router weight on the routed blocks, zero elsewhere
    ids = layer.routing(x.reshape(15, 16)).topk_ids
    blocks = z_gated.view(15, M, D)
    routed = torch.zeros(15, M, dtype=torch.bool).scatter(1, ids, True)
    assert (blocks[~routed] == 0).all()
    assert ((blocks != 0).sum(-1) <= (z_ungated.view(15, M, D) != 0).sum(-1)).all()


def test_moe_observer_emits_exact_rows():
    layer = tiny_layer(router="softmax", expert_act="relu", bias=True).eval()
    seen = {}
    layer.observer = lambda **kw: seen.update(kw)
    x = torch.randn(2, 9, 16)
    y = layer(x).reshape(18, 16)
    assert seen.pop("kind") == "moe"
    ids, w, tok, exp, hidden, out = (seen[k] for k in ("topk_ids", "topk_weights", "token_idx",
                                                        "expert_idx", "hidden", "out"))
    assert ids.shape == w.shape == (18, 2) and ids.dtype == tok.dtype == exp.dtype == torch.long
    assert hidden.shape == (36, layer.expert_width) and out.shape == (36, 16)
    xf = x.reshape(18, 16)
    # each row is the expert's ungated hidden and output on its token ...
    pre = torch.einsum("rd,rdh->rh", xf[tok], layer.w_enc[exp]) + layer.b_enc[exp]
    torch.testing.assert_close(hidden, F.relu(pre), atol=1e-6, rtol=0)
    torch.testing.assert_close(out, torch.einsum("rh,rhd->rd", hidden, layer.w_dec[exp]), atol=1e-6, rtol=0)
    # ... and the layer output is rebuilt from the rows and the emitted routing
    slot_w = (w[tok] * (ids[tok] == exp[:, None])).sum(1, keepdim=True)
    rebuilt = torch.zeros(18, 16).index_add(0, tok, out * slot_w) + layer.b_dec
    torch.testing.assert_close(rebuilt, y, atol=1e-6, rtol=0)
    assert sorted(zip(tok.tolist(), exp.tolist())) == sorted(
        (t, int(e)) for t in range(18) for e in ids[t])


def test_moe_last_stats_and_aux_loss():
    layer = tiny_layer(router="sparsity", expert_act="relu", aux_loss_coef=0.1)
    rows = {}
    layer.observer = lambda **kw: rows.update(kw)
    layer.train()
    x = torch.randn(40, 16)
    layer(x)
    s = layer.last_stats
    counts = torch.bincount(rows["expert_idx"], minlength=4).float()
    assert s["load"] == pytest.approx((counts / 80).tolist())
    assert s["l0"] == pytest.approx(float((rows["hidden"] != 0).sum()) / 40)
    assert 0 < s["l0"] < 2 * layer.expert_width  # ReLU experts: some units are off
    assert 0 <= s["router_entropy"] <= torch.log(torch.tensor(4.0)).item() + 1e-6
    expected_aux = 0.1 * load_balancing_loss(layer.routing(x), 4)
    torch.testing.assert_close(layer.aux_loss.detach(), expected_aux.detach())
    assert layer.aux_loss.requires_grad  # it trains the router (here: the expert encoders)
    layer.eval()
    layer.last_stats = {}
    layer(torch.randn(4, 16))
    assert layer.last_stats == {}  # only training forwards refresh the stats
    layer.train()
    layer.record_stats = False
    layer(torch.randn(4, 16))
    assert layer.last_stats == {}  # ... and only while record_stats is on
    off = tiny_layer(aux_loss_coef=0.0)
    off(torch.randn(4, 16))
    assert float(off.aux_loss) == 0.0


def _mlp(act: str) -> DenseMLP:
    torch.manual_seed(0)
    return DenseMLP(tiny_config(ffn_act=act, bias=True)).eval()


@pytest.mark.parametrize("act", ["gelu", "relu", "geglu", "solu"])
def test_dense_hidden_formulas_and_observer(act):
    mlp = _mlp(act)
    x = torch.randn(3, 4, 16)
    pre = mlp.c_fc(x)
    if act == "gelu":
        expected = 0.5 * pre * (1 + torch.erf(pre / 2 ** 0.5))
    elif act == "relu":
        expected = pre.clamp_min(0)
    elif act == "geglu":
        a, b = pre[..., :32], pre[..., 32:]
        expected = 0.5 * a * (1 + torch.erf(a / 2 ** 0.5)) * b
    else:  # x * softmax(x), then LayerNorm with the layer's affine parameters
        s = pre * torch.softmax(pre, -1)
        normed = (s - s.mean(-1, keepdim=True)) / torch.sqrt(s.var(-1, unbiased=False, keepdim=True) + 1e-5)
        expected = normed * mlp.solu.ln.weight + mlp.solu.ln.bias
    seen = {}
    mlp.observer = lambda **kw: seen.update(kw)
    y = mlp(x)
    assert seen["kind"] == "ffn" and seen["hidden"].shape == (12, 32)
    torch.testing.assert_close(seen["hidden"], expected.reshape(12, 32), atol=1e-5, rtol=0)
    torch.testing.assert_close(mlp.c_proj(seen["hidden"]), y.reshape(12, 16), atol=1e-6, rtol=0)
