"""Simulation: predict the unit's activation on every token from the explanation alone.

The judge gives an expected activation per token (a local model: the probability-weighted digit
0-9 at each slot of a teacher-forced answer; the rules judge: its predicate as 0/1). Metric:
Pearson r between predicted and true activations over all tokens of all scored windows pooled
(activating and non-activating test windows), not the mean of per-window correlations.
"""

from __future__ import annotations

import asyncio

from moelens.analysis.autointerp.scorers import metrics
from moelens.analysis.autointerp.scorers.base import ScoreResult, Scorer, items_of


class Simulation(Scorer):
    name = "simulation"
    main = "pearson"
    baseline = "chance"

    async def score(self, examples, explanation, judge, rng):
        items = items_of(examples, "test", "negatives")
        answers = await asyncio.gather(*(judge.simulate(explanation, it.window) for it in items))
        pred, true, records, calls = [], [], [], []
        for it, (sim, call) in zip(items, answers):
            rec = {"set": it.set, "index": it.index, "label": it.label}
            if sim is None:
                rec["failure"] = (call or {}).get("failure") or "no simulation"
            else:
                pred += sim
                true += it.window.acts
                rec["simulated"] = [round(float(v), 4) for v in sim]
            records.append(rec)
            if call and call.get("prompt"):
                calls.append(call)
        failures = sum("failure" in r for r in records)
        r = metrics.pearson(pred, true)
        m = {"n": len(items), "answered": len(items) - failures, "failures": failures, "tokens": len(true),
             "pearson": None if r is None else round(r, 6)}
        return ScoreResult(self.name, m, records, calls)
