"""Knowledge control on a model whose experts are wired per domain: ablating the domain's top
experts removes its loss advantage and leaves the other domain alone; random experts do not."""

from __future__ import annotations

import json

import pytest
import torch
from clitools import run_cli

from moelens.analysis.causal import knowledge
from moelens.analysis.causal.corpus import make_windows
from moelens.analysis.causal.sweep import Cell, sweep
from moelens.capture.adapters import get_adapter
from moelens.data.domains import read_labelled

from .planted import char_tokenizer, domain_model


@pytest.fixture(scope="module")
def setup(planted_dirs):
    model = domain_model()
    adapter = get_adapter(model)
    docs = read_labelled([planted_dirs["alpha"], planted_dirs["beta"]])
    windows = make_windows(docs, char_tokenizer(), ctx=16, batch_size=4)
    return model, adapter, windows


def test_rankings_find_the_wired_experts(setup):
    model, adapter, windows = setup
    assert windows.domains == ["alpha", "beta"]
    shares = knowledge.routing_shares(model, adapter, windows, [0])
    by_routing = knowledge.rank_by_routing(shares, 0)
    assert {c for c, _ in by_routing[:2]} == {Cell(0, 0), Cell(0, 1)}
    assert {c for c, _ in knowledge.rank_by_routing(shares, 1)[:2]} == {Cell(0, 2), Cell(0, 3)}
    rows = sweep(model, adapter, windows, [Cell(0, e) for e in range(8)])
    by_attr = knowledge.rank_by_attribution(rows, windows.domains, 0)
    assert {c for c, _ in by_attr[:2]} == {Cell(0, 0), Cell(0, 1)}
    assert all(s == float("-inf") for c, s in by_attr if c.expert >= 4)  # never routed: untested, last


def test_top_experts_remove_the_domain_and_random_ones_do_not(setup):
    model, adapter, windows = setup
    shares = knowledge.routing_shares(model, adapter, windows, [0])
    rows = knowledge.curve(model, adapter, windows, knowledge.rank_by_routing(shares, 0), "alpha",
                           ns=[1, 2], controls=6, seed=0)
    summ = {s["n"]: s for s in knowledge.summarise(rows)}
    base = {r["domain"]: r["base_loss"] for r in rows}
    assert base["alpha"] < 0.2 and base["beta"] < 0.2  # both domains predicted by their experts
    two = summ[2]
    assert two["ranked_delta_target"] > 4.0  # alpha's advantage is gone (near-uniform guessing)
    assert abs(two["ranked_delta_others"]) < 1e-4  # beta untouched
    assert two["random_delta_target"] < two["ranked_delta_target"] / 3
    assert summ[1]["ranked_delta_target"] < two["ranked_delta_target"]  # one of the pair is not enough
    draws = [r for r in rows if r["selection"] == "random" and r["n"] == 2 and r["domain"] == "alpha"]
    assert len(draws) == 6 and len({r["experts"] for r in draws}) > 1


def test_knowledge_command(planted_dirs, tmp_path):
    common = ["--model", planted_dirs["domain"], "--corpus", planted_dirs["alpha"], planted_dirs["beta"],
              "--ctx", "16", "--quiet"]
    proc = run_cli("causal", "knowledge", *common, "--ns", "2", "--controls", "2", "--no-figures",
                   "--out", tmp_path / "k")
    assert proc.returncode == 0, proc.stderr[-2000:]
    curves = json.loads((tmp_path / "k" / "summary.json").read_text())["curves"]
    alpha = next(c for c in curves if c["target_domain"] == "alpha")
    assert alpha["ranked_delta_target"] > 4.0 and abs(alpha["ranked_delta_others"]) < 1e-4
    assert not (tmp_path / "k" / "figures").exists()  # figures are drawn in the library test below


def test_knowledge_figure(setup, tmp_path):
    from moelens.analysis.causal import figures

    rows = [{"target_domain": "alpha", "selection": s, "n": n, "draw": 0, "domain": d,
             "delta_loss": 0.1 * n if d == "alpha" and s == "ranked" else 0.0}
            for s in ("ranked", "random") for n in (1, 2) for d in ("alpha", "beta")]
    path = figures.knowledge_curve(rows, "alpha", tmp_path / "k.png")
    assert path.stat().st_size > 1000


def test_a_token_budget_is_split_between_the_domains(planted_dirs):
    # documents come domain by domain; a budget spent in that order would leave 'beta' empty
    docs = read_labelled([planted_dirs["alpha"], planted_dirs["beta"]])
    windows = make_windows(docs, char_tokenizer(), ctx=16, batch_size=4, max_tokens=41)
    per_domain = torch.zeros(2, dtype=torch.long)
    for b in windows.batches:
        per_domain.index_add_(0, b.domain, b.mask.sum(-1))
    assert windows.n_tokens == 41 and per_domain.tolist() == [21, 20]
