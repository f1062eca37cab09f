"""Conformance of every family adapter: capture is exact and complete (written once, parametrised).

(a) capture leaves logits unchanged; (b) captured widths match the config; (c) expert rows,
weighted by the recorded top-k weights, plus shared experts rebuild the MoE block output;
(d) recorded routing equals the router's own; (e) dense neurons rebuild the MLP output; and
``stop_after`` skips the later layers.

Recomputations are compared relative to the size of what they rebuild (:func:`assert_rel_close`):
outputs of tiny models are 1e-3..1e-2, where an absolute 1e-5 would let a 1% error through.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from moelens.capture.adapters import SPACES, get_adapter
from moelens.capture.adapters.base import first

from .adapter_families import cached
from .adapter_sink import RecordingSink, hook_count


def _capture(model, ids, layers=None, spaces=SPACES):
    adapter = get_adapter(model)
    sink = RecordingSink()
    with torch.no_grad(), adapter.attach(sink, layers, spaces):
        logits = model(ids).logits
    return adapter, sink, logits


REL = 1e-4
"""Largest error allowed in a recomputation, as a share of the largest value it rebuilds."""


def assert_rel_close(actual: torch.Tensor, expected: torch.Tensor, rel: float = REL) -> None:
    """max |actual - expected| <= rel * max |expected| (fp32 reorderings sit near 1e-7)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = expected.abs().max().item()
    err = (actual - expected).abs().max().item()
    assert scale > 0, "nothing to compare: the reference is all zeros"
    assert err <= rel * scale, f"max abs error {err:.3g} is {err / scale:.3g} of the output scale {scale:.3g}"


IDS = torch.randint(3, 128, (2, 7), generator=torch.Generator().manual_seed(0))
"""The batch every conformance check runs on (same as the ``input_ids`` fixture)."""


@functools.cache
def captured(name):
    """One capture of every layer and space per family, shared by the checks below."""
    return _capture(cached(name), IDS)


@functools.cache
def stock(name):
    """Stock forward of a family: logits and each FFN block's input and output, flattened."""
    model = cached(name)
    adapter = get_adapter(model)
    block_in, block_out = {}, {}

    def keep(layer):
        def pre(module, args):
            block_in[layer] = args[0].reshape(-1, args[0].shape[-1])

        def post(module, args, output):
            block_out[layer] = first(output).reshape(-1, first(output).shape[-1])

        return pre, post

    hooks = []
    for layer in range(adapter.num_layers):
        pre, post = keep(layer)
        hooks += [adapter.block(layer).register_forward_pre_hook(pre), adapter.block(layer).register_forward_hook(post)]
    try:
        with torch.no_grad():
            logits = model(IDS).logits
    finally:
        for h in hooks:
            h.remove()
    return logits, block_in, block_out


def test_logits_unchanged_and_hooks_removed(family_model, input_ids):
    family, model = family_model
    assert torch.equal(input_ids, IDS)
    ref = stock(family.name)[0]
    before = hook_count(model)
    captured.cache_clear()  # measure hooks around a fresh capture
    adapter, sink, logits = captured(family.name)
    assert sink.calls, "capture recorded nothing"
    torch.testing.assert_close(logits, ref, rtol=0, atol=1e-6)
    for layer in adapter.moe_layers():
        assert "forward" not in vars(adapter.experts(layer)), "experts forward patch not removed"
    assert hook_count(model) == before, "hooks left behind"


def test_widths_match_config(family_model, input_ids):
    family, model = family_model
    adapter, sink, _ = captured(family.name)
    n = input_ids.numel()
    assert adapter.num_layers == family.num_layers
    assert adapter.moe_layers() == family.moe_layers
    assert adapter.dense_layers() == [i for i in range(family.num_layers) if i not in family.moe_layers]
    assert adapter.hidden_size == model.config.hidden_size
    for layer in range(adapter.num_layers):
        (resid,) = sink.one("resid", layer)
        assert resid.shape == (n, adapter.hidden_size)
    for layer in adapter.moe_layers():
        assert adapter.expert_width(layer) == family.expert_width
        assert adapter.shared_width(layer) == family.shared_width
        assert adapter.ffn_width(layer) == 0
        ids, weights = sink.one("routing", layer)
        k = adapter.top_k(layer)
        assert ids.shape == weights.shape == (n, k)
        _token_idx, expert_idx, hidden, out = sink.one("expert_rows", layer)
        assert hidden.shape == (n * k, family.expert_width)
        assert out.shape == (n * k, adapter.hidden_size)
        assert int(expert_idx.max()) < adapter.num_experts(layer)
        if family.shared_width:
            s_hidden, s_out = sink.one("shared", layer)
            assert s_hidden.shape == (n, family.shared_width) and s_out.shape == (n, adapter.hidden_size)
        else:
            assert ("shared", layer) not in sink.names()
    for layer in adapter.dense_layers():
        assert adapter.ffn_width(layer) == family.ffn_width
        (hidden,) = sink.one("ffn", layer)
        assert hidden.shape == (n, family.ffn_width)


def test_expert_rows_rebuild_moe_block(moe_model, input_ids):
    family, _model = moe_model
    adapter, sink, _ = captured(family.name)
    _, blocks_in, blocks_out = stock(family.name)
    for layer in adapter.moe_layers():
        block_in, block_out = blocks_in[layer], blocks_out[layer]
        ids, weights = sink.one("routing", layer)
        token_idx, expert_idx, hidden, out = sink.one("expert_rows", layer)
        # every (token, top-k slot) appears exactly once among the rows
        pairs = sorted(zip(token_idx.tolist(), expert_idx.tolist()))
        expected = sorted((t, int(e)) for t in range(ids.shape[0]) for e in ids[t])
        assert pairs == expected
        rebuilt = torch.zeros_like(block_out)
        for e in expert_idx.unique().tolist():
            rows = expert_idx == e
            recomputed = adapter.expert_output(layer, e, hidden[rows])
            assert_rel_close(recomputed, out[rows])
            slot_weight = (weights * (ids == e)).sum(-1)
            rebuilt.index_add_(0, token_idx[rows], recomputed * slot_weight[token_idx[rows], None])
        if family.shared_width:
            s_hidden, s_out = sink.one("shared", layer)
            assert_rel_close(adapter.shared_output(layer, s_hidden, block_in), s_out)
            rebuilt += s_out
        assert adapter.block_bias(layer) is None  # HF MoE blocks add no constant
        assert_rel_close(rebuilt, block_out)


def test_expert_neurons_follow_the_family_formula(moe_model, input_ids):
    """Neurons recomputed from the raw weights with the family's published activation."""
    family, _model = moe_model
    adapter, sink, _ = captured(family.name)
    clamped = []  # gpt-oss: (gate pre-activations > 7, up ones beyond ±7, all) per expert
    for layer in adapter.moe_layers():
        experts = adapter.experts(layer)
        block_in = stock(family.name)[1][layer]
        token_idx, expert_idx, hidden, _ = sink.one("expert_rows", layer)
        for e in expert_idx.unique().tolist():
            x = block_in[token_idx[expert_idx == e]]
            if family.name == "gpt_oss":
                gu = x @ experts.gate_up_proj[e] + experts.gate_up_proj_bias[e]
                pre_gate, pre_up = gu[:, 0::2], gu[:, 1::2]
                clamped.append(((pre_gate > 7).sum().item(), (pre_up.abs() > 7).sum().item(), pre_up.numel()))
                gate, up = pre_gate.clamp(max=7.0), pre_up.clamp(-7.0, 7.0)
                manual = (up + 1) * gate * torch.sigmoid(1.702 * gate)
            else:
                gate, up = (x @ experts.gate_up_proj[e].t()).chunk(2, dim=-1)
                manual = F.silu(gate) * up
            assert_rel_close(hidden[expert_idx == e], manual)
    if family.name == "gpt_oss":  # the clamps and the biases are engaged, so both are tested
        over_gate, over_up, total = map(sum, zip(*clamped))
        assert over_gate > 0.05 * total and over_up > 0.05 * total and over_up < 0.5 * total, clamped
        for layer in adapter.moe_layers():
            experts = adapter.experts(layer)
            for bias in (experts.gate_up_proj_bias, experts.down_proj_bias, adapter.router(layer).bias):
                assert bias.abs().min() > 0


def test_routing_equals_router(moe_model, input_ids):
    _, model = moe_model
    adapter = get_adapter(model)
    from_router = {}

    def keep(layer):
        def hook(module, args, output):
            from_router[layer] = output

        return hook

    hooks = [adapter.router(layer).register_forward_hook(keep(layer)) for layer in adapter.moe_layers()]
    try:
        _, sink, _ = _capture(model, input_ids)
    finally:
        for h in hooks:
            h.remove()
    for layer in adapter.moe_layers():
        _, r_weights, r_ids = from_router[layer]
        ids, weights = sink.one("routing", layer)
        assert torch.equal(ids, r_ids)
        assert torch.equal(weights, r_weights)
    if "output_router_logits" in model.config.to_dict():  # and the stock forward's router logits agree
        with torch.no_grad():
            logits = model(input_ids, output_router_logits=True).router_logits
        for layer, lg in zip(adapter.moe_layers(), logits):
            torch.testing.assert_close(lg.float(), from_router[layer][0].float(), rtol=0, atol=1e-6)


def test_dense_neurons_rebuild_mlp(dense_layer_model, input_ids):
    family, _model = dense_layer_model
    adapter, sink, _ = captured(family.name)
    assert adapter.dense_layers()
    for layer in adapter.dense_layers():
        (hidden,) = sink.one("ffn", layer)
        block_out = stock(family.name)[2][layer]
        assert_rel_close(adapter.ffn_output(layer, hidden), block_out)


def test_stop_after_skips_later_layers(family_model, input_ids):
    _, model = family_model
    adapter = get_adapter(model)
    ran = []
    hooks = [
        blk.register_forward_pre_hook(lambda m, a, i=i: ran.append(i) and None)
        for i, blk in enumerate(adapter.decoder_layers())
    ]
    sink = RecordingSink()
    try:
        with torch.no_grad(), adapter.attach(sink, spaces=["resid"]), adapter.stop_after(0):
            model(input_ids)
    finally:
        for h in hooks:
            h.remove()
    assert ran == [0]
    assert sink.names() == {("resid", 0)}
    with torch.no_grad():  # the stop hook is gone afterwards
        assert model(input_ids).logits.shape[:2] == input_ids.shape


def test_stop_after_entered_before_attach_still_records_the_layer(input_ids):
    model = cached("qwen2_moe")
    adapter = get_adapter(model)
    sink = RecordingSink()
    with torch.no_grad(), adapter.stop_after(1), adapter.attach(sink, layers=[1], spaces=["resid", "ffn"]):
        model(input_ids)
    assert sink.names() == {("resid", 1), ("ffn", 1)}
