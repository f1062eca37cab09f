"""The batched ablation sweep equals one full forward per ablation, on every MoE family; a cell
list splits into groups whose rows do not depend on the other cells; untested cells are NaN."""

from __future__ import annotations

import math

import pytest
import torch

from moelens.analysis.causal.corpus import Batch, Windows
from moelens.analysis.causal.means import mean_outputs
from moelens.analysis.causal.sweep import Cell, groups, sweep, sweep_reference
from moelens.capture.adapters import get_adapter

from .family_models import MOE_FAMILIES, VOCAB, model


def tiny_windows(seed: int = 0) -> Windows:
    """Two right-padded batches of random windows from two domains, with random labels of two
    concepts (and a third that labels nothing)."""
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for lengths, domains in (([6, 4, 5], [0, 1, 0]), ([5, 6], [1, 1])):
        t = max(lengths)
        ids = torch.randint(3, VOCAB, (len(lengths), t), generator=gen)
        mask = torch.zeros(len(lengths), t, dtype=torch.long)
        for r, n in enumerate(lengths):
            mask[r, :n] = 1
            ids[r, n:] = 0
        concepts = (torch.rand(len(lengths), t, 3, generator=gen) < torch.tensor([0.5, 0.3, 0.0])) & mask.bool()[..., None]
        batches.append(Batch(ids, mask, torch.tensor(domains), concepts))
    return Windows(batches, ["code", "prose"], 26, ["c0", "c1", "never"])


def cells_of(adapter):
    return [Cell(l, e) for l in adapter.moe_layers() for e in range(adapter.num_experts(l))]


def assert_rows_close(fast, ref):
    assert len(fast) == len(ref)
    for a, b in zip(fast, ref):
        keys = ("layer", "expert", "domain", "concept", "status", "tokens", "tokens_routed")
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
        for key in ("delta_loss", "kl", "delta_loss_routed"):
            x, y = a[key], b[key]
            if math.isnan(y):
                assert math.isnan(x), (a, b)
            else:
                assert abs(x - y) <= 1e-4 * max(1.0, abs(y)) + 1e-6, (key, a, b)


@pytest.fixture(params=MOE_FAMILIES)
def fam(request):
    return request.param


def test_batched_sweep_equals_one_forward_per_ablation(fam):
    check_parity(fam, "zero")


@pytest.mark.parametrize("fam_name", ["deepseek_v3", "flex_olmo", "moelens_moex"])
@pytest.mark.parametrize("ablation", ["remove", "mean"])
def test_renormalising_and_mean_sweeps_too(fam_name, ablation):
    """Weights summing to the routed scaling factor, a norm after the block, ReLU experts."""
    check_parity(fam_name, ablation)


def check_parity(fam, ablation):
    m = model(fam)
    adapter = get_adapter(m)
    windows = tiny_windows()
    cells = cells_of(adapter)
    if ablation != "zero":  # the first MoE layer's experts: a tail of several layers
        cells = [c for c in cells if c.layer == adapter.moe_layers()[0]]
    means = None
    if ablation == "mean":
        got = mean_outputs(m, adapter, windows.batches, adapter.moe_layers())
        means = {l: v[0] for l, v in got.items()}
    fast = sweep(m, adapter, windows, cells, ablation=ablation, group_size=3, means=means, tail_tokens=12)
    ref = sweep_reference(m, adapter, windows, cells, ablation=ablation, means=means)
    assert_rows_close(fast, ref)
    tested = [r for r in ref if r["status"] == "tested" and r["domain"] == "all"]
    assert tested and any(abs(r["delta_loss"]) > 1e-4 for r in tested), "no ablation did anything"
    assert {r["concept"] for r in tested} >= {"all", "c0", "c1"}  # concept rows are compared too
    assert all(r["status"] == "untested" for r in ref if r["concept"] == "never")


def test_untested_cells_and_domains():
    m = model("olmoe")
    adapter = get_adapter(m)
    windows = tiny_windows()
    layer = adapter.moe_layers()[0]
    rows = sweep(m, adapter, windows, cells_of(adapter)[: adapter.num_experts(layer)])
    assert {r["domain"] for r in rows} == {"all", "code", "prose"}
    assert {r["concept"] for r in rows} == {"all", "c0", "c1", "never"}
    rows = [r for r in rows if r["concept"] == "all"]
    by = {(r["expert"], r["domain"]): r for r in rows}
    for (e, dom), r in by.items():
        assert r["tokens"] == {"all": 21, "code": 9, "prose": 12}[dom]  # scored next-token positions
        if r["tokens_routed"] == 0:
            assert r["status"] == "untested" and math.isnan(r["delta_loss"]) and math.isnan(r["kl"])
        else:
            assert r["status"] == "tested" and not math.isnan(r["delta_loss"])
    routed_all = sum(by[(e, "all")]["tokens_routed"] for e in range(adapter.num_experts(layer)))
    assert routed_all == 26 * adapter.top_k(layer)  # every real token counted once per slot
    # an expert sent no token at all: force it by rerouting nothing to it -> it must be untested
    quiet = [e for e in range(adapter.num_experts(layer)) if by[(e, "all")]["tokens_routed"] == 0]
    if not quiet:  # make one: a windows set of a single token repeated touches few experts
        ids = torch.full((1, 3), 7)
        one = Windows([Batch(ids, torch.ones(1, 3, dtype=torch.long), torch.tensor([0]))], ["x"], 3)
        rows = sweep(m, adapter, one, [Cell(layer, e) for e in range(adapter.num_experts(layer))])
        assert any(r["status"] == "untested" for r in rows)


def test_groups_make_rows_independent_of_the_other_cells():
    m = model("olmoe")
    adapter = get_adapter(m)
    windows = tiny_windows(1)
    cells = cells_of(adapter)[adapter.num_experts(0):]  # the last layer's experts
    whole = sweep(m, adapter, windows, cells, group_size=4)
    gs = groups(cells, 4)
    assert [c for g in gs for c in g] == sorted(cells)
    parts = [r for rank in range(2) for g in gs[rank::2] for r in sweep(m, adapter, windows, g, group_size=4)]
    key = lambda r: (r["layer"], r["expert"], r["domain"], r["concept"])  # noqa: E731
    plain = lambda rows: [{k: "nan" if v != v else v for k, v in r.items()} for r in sorted(rows, key=key)]  # noqa: E731
    assert plain(parts) == plain(whole)  # bitwise: same groups, same forwards
