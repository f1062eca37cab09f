"""Planted ground truth: the rules explainer recovers each unit's firing rule and scores near 1;
the same explanations handed to the wrong units score at chance under every scorer."""

from __future__ import annotations

import numpy as np
import pytest
from ai_helpers import run, unit_examples

from moelens.analysis.autointerp.explainers.rules import RulesExplainer
from moelens.analysis.autointerp.scorers import binary, detection, embedding, fuzzing, rules
from moelens.analysis.autointerp.scorers.judges import RulesJudge
from moelens.analysis.autointerp.units import Unit

NEURONS = [Unit(1, "ffn", -1, i) for i in range(4)]
EXPERTS = [Unit(0, "expert_out", e) for e in range(3)]
EXPECTED = [{"kind": "tokens", "values": ["bird", "cat", "dog"]}, {"kind": "regex", "name": "number"},
            {"kind": "context", "name": "in_parens"}, {"kind": "prev_tokens", "values": ["the"]}]
SIZES = dict(n_test=30, n_negative=30)


@pytest.fixture(scope="module")
def neuron_examples(planted_store):
    return unit_examples(planted_store, NEURONS, [Unit(1, "ffn", -1, i) for i in range(13)], **SIZES)


@pytest.fixture(scope="module")
def neuron_explanations(neuron_examples):
    explainer = RulesExplainer()
    return [explainer.fit(neuron_examples[u]) for u in NEURONS]


def _score(scorer, examples, explanation, seed=0):
    return run(scorer.score(examples, explanation, RulesJudge(), np.random.default_rng(seed))).metrics


def _sorted(spec):
    return {**spec, "values": sorted(spec["values"])} if "values" in spec else spec


def test_rules_explainer_recovers_each_neuron_rule(neuron_examples, neuron_explanations):
    for unit, expl, expected in zip(NEURONS, neuron_explanations, EXPECTED):
        assert _sorted(expl.predicate) == expected, (unit.name, expl.predicate)
        ex = neuron_examples[unit]
        assert _score(detection.Detection(), ex, expl)["balanced_accuracy"] >= 0.95
        assert _score(fuzzing.Fuzzing(), ex, expl)["balanced_accuracy"] >= 0.95
        assert _score(binary.Binary(), ex, expl)["f1"] >= 0.95
        assert _score(rules.RulesScore(), ex, expl)["token_f1"] >= 0.95


def test_rules_explainer_recovers_each_expert_rule(planted_store):
    pool = [Unit(0, "expert_out", e) for e in range(6)]
    examples = unit_examples(planted_store, EXPERTS, pool, **SIZES)
    explainer = RulesExplainer()
    for unit, expected in zip(EXPERTS, EXPECTED):
        ex = examples[unit]
        assert ex.ok and not ex.notes, ex.notes  # an expert routed only its rule has quiet windows
        expl = explainer.fit(ex)
        assert _sorted(expl.predicate) == expected, (unit.name, expl.predicate)
        assert _score(detection.Detection(), ex, expl)["balanced_accuracy"] >= 0.95
        assert _score(binary.Binary(), ex, expl)["f1"] >= 0.95


def test_shuffled_explanations_score_at_chance(neuron_examples, neuron_explanations, encoder):
    """Each unit gets another unit's explanation (three shifts): balanced accuracy near 0.5."""
    scorers = [detection.Detection(), fuzzing.Fuzzing(), binary.Binary(), embedding.Embedding()]
    values = {s.name: [] for s in scorers}
    for shift in (1, 2, 3):
        for k, unit in enumerate(NEURONS):
            wrong = neuron_explanations[(k + shift) % len(NEURONS)]
            for s in scorers:
                values[s.name].append(_score(s, neuron_examples[unit], wrong, seed=shift)["balanced_accuracy"])
    for name, vals in values.items():
        assert abs(np.mean(vals) - 0.5) <= 0.1, (name, vals)
        assert max(abs(v - 0.5) for v in vals) <= 0.25, (name, vals)
    # the right explanation of the token-set unit is recognised by the encoder (it is used at all)
    right = _score(embedding.Embedding(), neuron_examples[NEURONS[0]], neuron_explanations[0])
    assert right["auroc"] >= 0.8, right
