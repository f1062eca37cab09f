"""Naive per-token reference of the MoE layer, for parity tests only (slow by design).

Every token is pushed through each of its top-k experts one at a time, with no sorting, no
grouping and no index arithmetic shared with :mod:`moelens.models.dispatch`; only the routing
(the part under test elsewhere) is taken from the layer.
"""

from __future__ import annotations

import torch

from moelens.models.moe import MoELayer


def reference_moe(layer: MoELayer, x: torch.Tensor) -> torch.Tensor:
    """The layer's output for x [..., d], computed token by token and expert by expert."""
    flat = x.reshape(-1, layer.n_embd)
    r = layer.routing(flat)
    rows = []
    for n in range(flat.shape[0]):
        acc = torch.zeros(layer.n_embd, dtype=flat.dtype)
        for j in range(layer.top_k):
            e = int(r.topk_ids[n, j])
            pre = flat[n] @ layer.w_enc[e]
            if layer.b_enc is not None:
                pre = pre + layer.b_enc[e]
            acc = acc + r.topk_weights[n, j] * (layer.act(pre) @ layer.w_dec[e])
        rows.append(acc)
    y = torch.stack(rows)
    if layer.b_dec is not None:
        y = y + layer.b_dec
    return y.reshape(x.shape)
