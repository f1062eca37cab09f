"""Every intervention changes exactly what it should, on a tiny model of every MoE family
(written once, parametrised over the conformance suite's families and moelens models).

The reference for each change is recomputed by hand from a stock capture: the expert's output
from its captured neurons (``adapter.expert_output``) times its recorded slot weight.
"""

from __future__ import annotations

import functools

import pytest
import torch

from moelens.analysis.causal import Intervention, intervene, measure
from moelens.capture.adapters import get_adapter

from .family_models import MOE_FAMILIES, VOCAB, block, model


class Sink:
    """Keeps routing, expert rows and residuals of one forward."""

    def __init__(self):
        self.got = {}

    def routing(self, layer, ids, weights):
        self.got[("routing", layer)] = (ids.clone(), weights.clone())

    def expert_rows(self, layer, token_idx, expert_idx, hidden, out):
        self.got[("rows", layer)] = (token_idx.clone(), expert_idx.clone(), hidden.clone(), out.clone())

    def shared(self, *a):
        pass

    def ffn(self, *a):
        pass

    def resid(self, layer, hidden):
        self.got[("resid", layer)] = hidden.clone()


IDS = torch.randint(3, VOCAB, (2, 7), generator=torch.Generator().manual_seed(3))


def run(name, interventions=(), capture=True):
    """(logits, block outputs per MoE layer [N, H], sink) of one forward under ``interventions``."""
    m = model(name)
    adapter = get_adapter(m)
    outs, hooks = {}, []
    for layer in adapter.moe_layers():
        def keep(mod, args, out, layer=layer):
            o = out[0] if isinstance(out, tuple) else out
            outs[layer] = o.reshape(-1, o.shape[-1]).detach().clone()
        hooks.append(block(adapter, layer).register_forward_hook(keep))
    sink = Sink()
    try:
        with torch.no_grad(), intervene(m, list(interventions), adapter=adapter):
            if capture:
                with adapter.attach(sink, spaces=["expert", "resid"]):
                    logits = m(IDS).logits
            else:
                logits = m(IDS).logits
    finally:
        for h in hooks:
            h.remove()
    return logits, outs, sink, adapter


@functools.cache
def stock(name):
    m = model(name)
    with torch.no_grad():
        plain = m(IDS).logits
    return plain, run(name)


def contribution(adapter, sink, layer, expert):
    """[N, H]: expert's weighted output on each token, recomputed from its captured neurons."""
    ids, weights = sink.got[("routing", layer)]
    token_idx, expert_idx, hidden, _ = sink.got[("rows", layer)]
    rows = expert_idx == expert
    with torch.no_grad():
        out = adapter.expert_output(layer, expert, hidden[rows])
    w = (weights * (ids == expert)).sum(-1)
    contrib = torch.zeros(ids.shape[0], adapter.hidden_size)
    contrib[token_idx[rows]] = out.float() * w[token_idx[rows], None].float()
    return contrib


def assert_rel(actual, expected, rel=1e-4):
    scale = expected.abs().max().item()
    assert scale > 0, "nothing to compare"
    err = (actual - expected).abs().max().item()
    assert err <= rel * scale, f"error {err:.3g} is {err / scale:.3g} of scale {scale:.3g}"


def busiest(name):
    """(layer, expert): the last MoE layer and its most-routed expert on IDS."""
    _, (_, _, sink, adapter) = stock(name)
    layer = adapter.moe_layers()[-1]
    ids, _ = sink.got[("routing", layer)]
    return layer, int(torch.bincount(ids.reshape(-1), minlength=adapter.num_experts(layer)).argmax())


@pytest.fixture(params=MOE_FAMILIES)
def fam(request):
    return request.param


def test_no_intervention_is_bitwise_stock(fam):
    plain, (logits, _, _, adapter) = stock(fam)
    with torch.no_grad(), intervene(model(fam), [], adapter=adapter):
        again = model(fam)(IDS).logits
    assert torch.equal(again, plain)
    assert torch.equal(logits, plain), "capture hooks changed the logits"
    layer, e = busiest(fam)  # a hooked but neutral edit (x1 on every slot) changes nothing either
    neutral, _, _, _ = run(fam, [Intervention(layer, e, "scale", value=1.0)], capture=False)
    assert torch.equal(neutral, plain)


def test_unembedding_and_scales_rebuild_the_logits(fam):
    plain, (_, _, sink, adapter) = stock(fam)
    last = sink.got[("resid", adapter.num_layers - 1)]
    with torch.no_grad():
        rebuilt = adapter.final_norm()(last) @ adapter.unembedding().t() * adapter.logit_scale()
        parts = adapter.final_norm_linear(last, last)  # the whole residual as one part
    assert_rel(rebuilt, plain.reshape(-1, plain.shape[-1]))
    bias = adapter.final_norm()(torch.zeros_like(last[:1]))
    assert_rel(parts + bias, adapter.final_norm()(last).detach())
    _, outs, _, _ = stock(fam)[1]
    for layer, out in outs.items():  # the linear share of a whole block output is its update
        with torch.no_grad():
            whole = adapter.residual_update_linear(layer, out, out) + adapter.residual_update(layer, 0 * out[:1])
            assert_rel(whole, adapter.residual_update(layer, out))


@pytest.mark.parametrize("kind,factor", [("zero", -1.0), ("scale", 1.5), ("mean", None)])
def test_block_output_changes_by_the_weighted_contribution(fam, kind, factor):
    layer, e = busiest(fam)
    _, (_, outs, sink, adapter) = stock(fam)
    contrib = contribution(adapter, sink, layer, e)
    if kind == "mean":
        mean = torch.randn(adapter.hidden_size, generator=torch.Generator().manual_seed(1))
        ids, weights = sink.got[("routing", layer)]
        w = (weights * (ids == e)).sum(-1, keepdim=True).float()
        expected = w * mean - contrib
        iv = Intervention(layer, e, "mean", mean=mean)
    else:
        expected = (factor - 1.0 if kind == "scale" else factor) * contrib
        iv = Intervention(layer, e, kind, value=factor if kind == "scale" else 0.0)
    _, new_outs, new_sink, _ = run(fam, [iv])
    assert_rel(new_outs[layer] - outs[layer], expected)
    # the residual stream moves by the layer's own update of the changed block output
    with torch.no_grad():
        update = adapter.residual_update(layer, new_outs[layer]) - adapter.residual_update(layer, outs[layer])
    assert_rel(new_sink.got[("resid", layer)] - sink.got[("resid", layer)], update)
    for earlier in adapter.moe_layers():
        if earlier < layer:
            assert torch.equal(new_outs[earlier], outs[earlier])


def test_remove_renormalises_the_rest(fam):
    layer, e = busiest(fam)
    _, (_, outs, sink, adapter) = stock(fam)
    ids, weights = sink.got[("routing", layer)]
    _, _, new_sink, _ = run(fam, [Intervention(layer, e, "remove")])
    new_ids, new_w = new_sink.got[("routing", layer)]
    assert torch.equal(new_ids, ids)
    hit = (ids == e).any(-1)
    assert hit.any()
    assert (new_w[ids == e] == 0).all()
    torch.testing.assert_close(new_w.sum(-1), weights.sum(-1), rtol=1e-5, atol=1e-6)  # total kept
    ratio = new_w[hit] / weights[hit]  # the other slots share one factor per token
    others = (ids[hit] != e)
    for r, keep in zip(ratio, others):
        if keep.sum() > 1:
            torch.testing.assert_close(r[keep], r[keep][:1].expand(int(keep.sum())), rtol=1e-5, atol=0)
    if torch.allclose(weights.sum(-1), torch.ones(len(weights)), atol=1e-5):
        torch.testing.assert_close(new_w.sum(-1), torch.ones(len(weights)), rtol=0, atol=1e-5)


def test_reroute_moves_the_tokens(fam):
    layer, e = busiest(fam)
    _, (_, _, sink, adapter) = stock(fam)
    to = (e + 1) % adapter.num_experts(layer)
    ids, weights = sink.got[("routing", layer)]
    _, _, new_sink, _ = run(fam, [Intervention(layer, e, "reroute", to=to)])
    new_ids, new_w = new_sink.got[("routing", layer)]
    assert not (new_ids == e).any()
    assert torch.equal(new_ids, torch.where(ids == e, torch.full_like(ids, to), ids))
    assert torch.equal(new_w, weights)
    token_idx, expert_idx, _, _ = new_sink.got[("rows", layer)]
    moved = sorted(token_idx[expert_idx == to].tolist())
    before_tok, before_exp, _, _ = sink.got[("rows", layer)]
    assert moved == sorted(before_tok[(before_exp == to) | (before_exp == e)].tolist())


def test_force_logit_routes_through_the_familys_own_top_k(fam):
    layer, e = busiest(fam)
    _, (_, _, sink, adapter) = stock(fam)
    _, _, out_sink, _ = run(fam, [Intervention(layer, e, "force_logit", value=float("-inf"))])
    assert not (out_sink.got[("routing", layer)][0] == e).any()
    quiet = int(torch.bincount(sink.got[("routing", layer)][0].reshape(-1),
                               minlength=adapter.num_experts(layer)).argmin())
    _, _, in_sink, _ = run(fam, [Intervention(layer, quiet, "force_logit", value=30.0)])
    assert (in_sink.got[("routing", layer)][0] == quiet).any(-1).all()


def test_positions_limit_the_change_and_untested_is_reported(fam):
    layer, e = busiest(fam)
    _, (_, outs, sink, adapter) = stock(fam)
    ids, _ = sink.got[("routing", layer)]
    pos = next(p for p in range(IDS.shape[1]) if (ids.view(2, -1, ids.shape[-1])[:, p] == e).any())
    _, new_outs, _, _ = run(fam, [Intervention(layer, e, "zero", positions=(pos,))])
    changed = (new_outs[layer] - outs[layer]).abs().amax(-1).view(2, -1) > 0
    assert changed[:, pos].any() and not changed[:, [p for p in range(IDS.shape[1]) if p != pos]].any()
    # an expert never routed at that position: "untested", never "no effect"
    row = int((ids.view(2, -1, ids.shape[-1])[:, pos] == e).any(-1).int().argmax())
    at = ids.view(2, -1, ids.shape[-1])[row, pos].tolist()
    idle = next(x for x in range(adapter.num_experts(layer)) if x not in at)
    eff = measure(model(fam), IDS, [Intervention(layer, idle, "zero", positions=(pos,), rows=(row,)),
                                    Intervention(layer, e, "zero", positions=(pos,), rows=(row,))],
                  adapter=adapter)
    assert [iv.expert for iv in eff.untested] == [idle]
    assert eff.kl[row].sum() > 0 and eff.kl[1 - row].sum() == 0  # the baseline copy is untouched
    assert (eff.kl[row, :pos] == 0).all()  # positions before the edit cannot see it (causal)
    assert torch.equal(eff.delta_ce, -eff.delta_logp)  # the default target is the next token


def test_fp32_execution_restores_the_models_dtype():
    import copy

    m = copy.deepcopy(model("olmoe")).to(torch.bfloat16)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    adapter = get_adapter(m)
    layer = adapter.moe_layers()[0]
    with torch.no_grad(), intervene(m, [Intervention(layer, 0, "zero")], adapter=adapter, fp32=True):
        assert next(m.parameters()).dtype == torch.float32
        assert m(IDS).logits.dtype == torch.float32
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())  # bf16 -> fp32 -> bf16 exact
