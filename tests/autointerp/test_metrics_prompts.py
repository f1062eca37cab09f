"""Metrics (failures kept apart, AUROC with ties, intervals) and the prompt parsers."""

from __future__ import annotations

import email.utils
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from moelens.analysis.autointerp import prompts
from moelens.analysis.autointerp.clients.openai_compat import retry_after
from moelens.analysis.autointerp.corpus import Window
from moelens.analysis.autointerp.explainers.llm import parse_prefilled
from moelens.analysis.autointerp.scorers import metrics


def test_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.4
    s = np.round(rng.random(200) + 0.3 * y, 1)  # many ties
    assert abs(metrics.auroc(y, s) - roc_auc_score(y, s)) < 1e-12
    assert metrics.auroc([1, 1], [0.2, 0.3]) is None


def test_failures_are_counted_never_scored():
    m = metrics.classification([1, 1, 0, 0, 1], [1, None, 0, None, 0])
    assert (m["n"], m["answered"], m["failures"]) == (5, 3, 2)
    assert m["recall"] == 0.5 and m["specificity"] == 1.0 and m["balanced_accuracy"] == 0.75
    assert m["f1_all_yes"] == round(2 * 2 / (2 * 2 + 1), 6)
    none = metrics.classification([1, 0], [None, None])
    assert none["answered"] == 0 and none["balanced_accuracy"] is None


def test_wilson_and_bootstrap_intervals():
    lo, hi = metrics.wilson(8, 10)
    assert abs(lo - 0.4902) < 1e-3 and abs(hi - 0.9433) < 1e-3
    mean, lo, hi = metrics.bootstrap_mean([0.2, 0.4, 0.6, 0.8], 2000, 0)
    assert mean == 0.5 and lo < 0.5 < hi and hi - lo < 0.6


def test_decile_rows_pool_recall_and_specificity():
    recs = [{"label": 1, "decile": 3, "prediction": 1}, {"label": 1, "decile": 3, "prediction": 0},
            {"label": 0, "decile": None, "prediction": 0}, {"label": 0, "decile": None, "prediction": None}]
    rows = {r["group"]: r for r in metrics.by_decile(recs)}
    assert rows["decile 3"]["rate"] == 0.5 and rows["decile 3"]["n"] == 2
    assert rows["non-activating"]["rate"] == 1.0 and rows["non-activating"]["n"] == 1


def test_parsers_accept_json_and_reject_the_rest():
    assert prompts.parse_explanation('Sure!\n```json\n{"explanation": "  closing  brackets "}\n```') == "closing brackets"
    assert prompts.parse_explanation('{"hypothesis": "digits after a dot"}') == "digits after a dot"
    for bad in ("no json here", '{"explanation": ""}', '{"other": "x"}', "", None, '{"explanation": 3}'):
        assert prompts.parse_explanation(bad) is None, bad
    assert prompts.parse_answers('{"answers": [1, 0, "1"]}', 3) == [1, 0, 1]
    for bad in ('{"answers": [1, 0]}', '{"answers": [1, 2, 0]}', '{"answers": [0.5, 1, 1]}', "1 0 1"):
        assert prompts.parse_answers(bad, 3) is None, bad
    assert prompts.parse_intruder('{"intruder": 3}', 5) == 2
    assert prompts.parse_intruder('{"intruder": 6}', 5) is None
    assert parse_prefilled('{"explanation": "digits of move numbers", ...', '{"explanation": "') == "digits of move numbers"
    assert parse_prefilled('{"explanation": "never closed', '{"explanation": "') is None


def test_activation_scale_and_marks():
    assert prompts.scale([0.0, 0.05, 0.5, 1.0, 2.0], 1.0) == [0, 1, 5, 10, 10]
    w = Window(0, ["a", " b", " c", " ", "d"], [0] * 5, [0, 1, 1, 1, 0], "activating", 0)
    assert prompts.marked(w, [1, 2]) == "a <<b c>> d"
    assert prompts.marked(w, [3]) == "a b c<< >>d"
    assert prompts.marked(w, None) == prompts.plain(w) == "a b c d"


def test_retry_after_seconds_and_dates():
    assert retry_after("2") == 2.0 and retry_after(None) is None and retry_after("soon") is None
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= retry_after(when) <= 31
