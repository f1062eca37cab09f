"""The tapped experts forward against the stock eager loop, and its matmul fallback against the fast path."""

from __future__ import annotations

import pytest
import torch

from moelens.capture.adapters import get_adapter
from moelens.capture.adapters.experts import (
    _loop_grouped_linear,
    grouped_linear,
    tapped_experts_forward,
)

from .adapter_families import cached


@pytest.mark.parametrize("name", ["olmoe", "gpt_oss", "deepseek_v3"])
def test_tapped_forward_equals_stock_eager_loop(name):
    adapter = get_adapter(cached(name))
    layer = adapter.moe_layers()[-1]
    experts, router = adapter.experts(layer), adapter.router(layer)
    x = torch.randn(40, adapter.hidden_size, generator=torch.Generator().manual_seed(3))
    rows = []
    with torch.no_grad():
        _, weights, ids = router(x)
        eager = type(experts).forward.__wrapped__(experts, x, ids, weights)  # the class's own loop
        tapped = tapped_experts_forward(experts, x, ids, weights, lambda *r: rows.append(r))
    torch.testing.assert_close(tapped, eager, rtol=0, atol=1e-6)
    ((ids_, weights_, token_idx, expert_idx, _, _),) = rows
    assert torch.equal(ids_, ids) and torch.equal(weights_, weights)
    assert torch.all(expert_idx[1:] >= expert_idx[:-1]), "rows are grouped by expert"
    for e in expert_idx.unique().tolist():  # stable: tokens keep their order inside an expert
        assert torch.all(torch.diff(token_idx[expert_idx == e]) > 0)


@pytest.mark.parametrize("dims", [(8, 12), (6, 5)])  # (6, 5): widths grouped_mm rejects, loop fallback
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_loop_fallback_matches_grouped_linear(dims, transposed, with_bias):
    d_in, d_out = dims
    g = torch.Generator().manual_seed(0)
    counts = torch.tensor([3, 0, 5, 1])
    x = torch.randn(int(counts.sum()), d_in, generator=g)
    weight = torch.randn(4, d_in, d_out, generator=g) if transposed else torch.randn(4, d_out, d_in, generator=g)
    offsets = torch.cumsum(counts, 0, dtype=torch.int32)
    bias = torch.randn(int(counts.sum()), d_out, generator=g) if with_bias else None
    expected = torch.cat([
        x[s:e] @ (weight[i] if transposed else weight[i].t())
        for i, (s, e) in enumerate(zip([0, *offsets.tolist()[:-1]], offsets.tolist()))
    ])
    if bias is not None:
        expected = expected + bias
    torch.testing.assert_close(_loop_grouped_linear(x, weight, offsets, bias, transposed), expected)
    torch.testing.assert_close(grouped_linear(x, weight, offsets, bias, transposed), expected)
