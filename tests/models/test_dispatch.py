"""Dispatch parity: the grouped (grouped_mm) and segment paths equal a naive per-token loop.

Outputs and gradients (input, expert weights, biases, router) in fp32 within 1e-5, for every
router x expert activation, k in {1, 2}, with uneven loads and one expert forced to get no token.
"""

from __future__ import annotations

import pytest
import torch
from model_helpers import one_thread, tiny_layer  # noqa: F401 (autouse fixture)
from moe_reference import reference_moe

from moelens.models import dispatch as dsp

EMPTY = 3  # the expert that must receive no token


def starve_expert(layer, x: torch.Tensor) -> None:
    """Make expert EMPTY the worst choice for every token (x[:, 0] is a large positive feature)."""
    with torch.no_grad():
        if layer.router.__class__.__name__ == "SoftmaxRouter":
            layer.router.weight[EMPTY, 0] = -50.0
        else:  # sparsity router: a large positive mean makes every unit fire -> lowest score
            layer.w_enc[EMPTY, 0, :] += 20.0


def inputs(n: int = 32, d: int = 16, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    x[:, 0] = 2.0 + x[:, 0].abs()
    return x


def grads_of(layer, x, fn, upstream):
    layer.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    y = fn(x)
    (y * upstream).sum().backward()
    named = {"x": x.grad}
    named.update({n: p.grad for n, p in layer.named_parameters()})
    return y.detach(), named


@pytest.mark.parametrize("backend", ["grouped_mm", "segments"])
@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("act", ["relu", "gelu", "silu"])
@pytest.mark.parametrize("router", ["softmax", "sparsity"])
def test_dispatch_matches_per_token_loop(router, act, k, backend):
    layer = tiny_layer(router=router, expert_act=act, top_k=k, bias=True)
    layer.backend = backend
    x = inputs()
    starve_expert(layer, x)
    counts = torch.bincount(layer.routing(x).topk_ids.reshape(-1), minlength=layer.num_experts)
    assert counts[EMPTY] == 0 and len(set(counts.tolist())) > 1, counts  # uneven, one empty
    # upstream gradient of a mean loss, so gradients are O(1) and 1e-5 is a fp32-level bound
    upstream = torch.randn(x.shape, generator=torch.Generator().manual_seed(2)) / x.shape[0]
    y_fast, g_fast = grads_of(layer, x, layer, upstream)
    y_ref, g_ref = grads_of(layer, x, lambda t: reference_moe(layer, t), upstream)
    torch.testing.assert_close(y_fast, y_ref, atol=1e-5, rtol=0)
    assert set(g_fast) == {"x", "w_enc", "w_dec", "b_enc", "b_dec"} | (
        {"router.weight"} if router == "softmax" else set())
    for name in g_ref:
        torch.testing.assert_close(g_fast[name], g_ref[name], atol=1e-5, rtol=0, msg=name)
    assert g_fast["w_enc"][EMPTY].abs().sum() == 0 or router == "sparsity"


def test_auto_backend_choice():
    layer = tiny_layer()
    xs = torch.randn(8, 16)
    assert dsp.pick_backend("auto", xs, layer.w_enc, layer.w_dec) == "grouped_mm"
    odd = tiny_layer(expert_width=10)  # 40-byte rows: not 16-byte aligned
    assert dsp.pick_backend("auto", xs, odd.w_enc, odd.w_dec) == "segments"
    x = inputs()
    torch.testing.assert_close(odd(x), reference_moe(odd, x), atol=1e-5, rtol=0)


def test_sort_by_expert_groups_rows():
    ids = torch.tensor([[2, 0], [0, 1], [2, 1], [0, 2]])
    d = dsp.sort_by_expert(ids, num_experts=4)
    assert d.expert_idx.tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    assert d.token_idx.tolist() == [0, 1, 3, 1, 2, 0, 2, 3]
    assert d.counts.tolist() == [3, 2, 3, 0] and d.offs.tolist() == [3, 5, 8, 8]
    assert d.offs.dtype == torch.int32
