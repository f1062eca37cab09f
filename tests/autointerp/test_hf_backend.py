"""The local-model backend on a tiny Llama built from a config: its answers are nonsense, so these
tests check the pipeline, the probabilities and the failure accounting, not quality."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ai_helpers import run, tiny_llama, unit_examples
from clitools import run_cli

from moelens.analysis.autointerp import prompts
from moelens.analysis.autointerp.clients.base import ResponseCache
from moelens.analysis.autointerp.clients.hf import HFClient
from moelens.analysis.autointerp.explainers.base import Explanation
from moelens.analysis.autointerp.explainers.llm import LLMExplainer
from moelens.analysis.autointerp.scorers.detection import Detection
from moelens.analysis.autointerp.scorers.judges import ProbJudge, Shown
from moelens.analysis.autointerp.scorers.simulation import Simulation
from moelens.analysis.autointerp.units import Unit


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    return tiny_llama(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="module")
def examples(planted_store):
    unit = Unit(1, "ffn", -1, 0)
    return unit_examples(planted_store, [unit], n_explain=4, n_test=4, n_negative=4)[unit]


def test_judge_probabilities_are_the_models(lm_dir, examples, tmp_path):
    client = HFClient(str(lm_dir), ResponseCache(tmp_path / "cache"))
    items = [Shown(w) for w in examples.test[:3]]
    judged, calls = run(ProbJudge(client).classify("detection", Explanation("animal words"), items))
    assert client.usage.requests == 3 and all(c["prompt"] for c in calls)
    for it, j in zip(items, judged):
        text = client.render(prompts.judge_one_messages("detection", "animal words", it.text()))
        ids = client._tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            probs = torch.softmax(client._lm(ids).logits[0, -1], dim=-1)
        p0, p1 = (float(probs[client._tok.convert_tokens_to_ids(c)]) for c in "01")
        assert j.probability == pytest.approx(p1 / (p0 + p1), rel=1e-5)
        assert j.prediction == int(j.probability >= 0.5)
    warm = HFClient(str(lm_dir), ResponseCache(tmp_path / "cache"))
    again, _ = run(ProbJudge(warm).classify("detection", Explanation("animal words"), items))
    assert [j.probability for j in again] == [j.probability for j in judged]
    assert warm.usage.cached == 3 and warm.usage.requests == 0 and warm._lm is None  # never loaded


def test_failures_are_counted(lm_dir, examples, tmp_path):
    client = HFClient(str(lm_dir), ResponseCache(None), max_new_tokens=12)
    res = run(Detection().score(examples, Explanation("animal words"), ProbJudge(client, min_mass=1.01),
                                np.random.default_rng(0)))
    assert (res.metrics["answered"], res.metrics["failures"]) == (0, 8)
    assert all("did not answer" in r["failure"] for r in res.records)
    expl = run(LLMExplainer(client, expert_level=False, prefill=True).explain(examples))
    assert expl.raw.startswith('{"explanation": "') and (expl.text is None) == (expl.failure is not None)


def test_simulation_reads_a_distribution_at_every_slot(lm_dir, examples, tmp_path):
    client = HFClient(str(lm_dir), ResponseCache(None))
    res = run(Simulation().score(examples, Explanation("animal words"), ProbJudge(client), np.random.default_rng(0)))
    n_tokens = sum(len(w.tokens) for w in examples.test + examples.negatives)
    assert res.metrics["tokens"] == n_tokens and res.metrics["failures"] == 0
    sims = [v for r in res.records for v in r["simulated"]]
    assert len(sims) == n_tokens and all(0.0 <= v <= 9.0 for v in sims) and np.std(sims) > 0
    assert res.metrics["pearson"] is not None and -1 <= res.metrics["pearson"] <= 1


def test_interpret_with_a_local_model(lm_dir, planted_store, tmp_path):
    out = tmp_path / "run"
    proc = run_cli("interpret", "--store", planted_store, "--out", out, "--level", "neuron", "--space", "ffn",
                   "--layer", "1", "--units", "0", "--explainer", "hf", "--hf.model", lm_dir, "--hf.max_new_tokens",
                   "8", "--n_explain", "4", "--n_test", "4", "--n_negative", "4", "--scorers", "detection",
                   "simulation", "--no-figures", "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec = json.loads((out / "units" / "L1.ffn.N0.json").read_text())
    assert rec["explanation"]["prompt"] and rec["explanation"]["raw"]
    summ = json.loads((out / "summary.json").read_text())
    assert summ["usage"]["requests"] >= 1 and {r["scorer"] for r in summ["table"]} == {"detection", "simulation"}
