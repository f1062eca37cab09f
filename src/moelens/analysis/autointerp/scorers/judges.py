"""Judges: whatever reads an explanation and a window and answers for the scorers.

Three kinds, one interface (:class:`Judge`):

- :class:`RulesJudge` runs a rules explanation's predicate (no LLM): detection = the predicate
  holds on some token; fuzzing and binary = it holds on every marked token; simulation = the
  predicate as a 0/1 activation; intruder = the window whose marked tokens share the fewest
  token texts with the others' marked tokens.
- :class:`ChatJudge` asks a chat endpoint, several windows per prompt (``batch``, delphi's 5),
  JSON answers; an unusable answer fails every window of its batch.
- :class:`ProbJudge` asks a local model about one window per prompt (all of a scorer's prompts
  in one batch that shares their common beginning) and reads p = P("1") / (P("0") + P("1"))
  from the next token (prediction p >= 0.5; AUROC from p); an answer whose two tokens
  together have less than ``min_mass`` probability is a failure (the model did not answer).

A failure is a prediction of ``None``; scorers count it, never as a 0 or a 1.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

import numpy as np

from moelens.analysis.autointerp import prompts
from moelens.analysis.autointerp.corpus import Window
from moelens.analysis.autointerp.explainers.base import Explanation
from moelens.analysis.autointerp.explainers.predicates import View, evaluate, token_key


@dataclass
class Shown:
    """A window as a judge sees it: with ``marks`` (token indices wrapped in << >>) or none."""

    window: Window
    marks: list[int] | None = None

    def text(self) -> str:
        return prompts.marked(self.window, self.marks) if self.marks is not None else prompts.plain(self.window)


@dataclass
class Judgement:
    prediction: int | None
    probability: float | None = None
    failure: str | None = None


def _call(messages, completion, failure=None) -> dict:
    return {"prompt": messages, "raw": completion.text if completion is not None else None,
            "extra": completion.extra if completion is not None else None,
            "failure": failure or (completion.failure if completion is not None else None)}


class Judge:
    name = "base"
    gives_probabilities = False

    async def classify(self, task: str, explanation: Explanation, items: list[Shown]
                       ) -> tuple[list[Judgement], list[dict]]:
        raise NotImplementedError

    async def intruder(self, items: list[Shown]) -> tuple[Judgement, dict]:
        raise NotImplementedError

    async def simulate(self, explanation: Explanation, window: Window) -> tuple[list[float] | None, dict]:
        raise NotImplementedError


class RulesJudge(Judge):
    name = "rules"

    async def classify(self, task, explanation, items):
        if explanation.predicate is None:
            fail = "the rules judge needs a rules explanation (a predicate)"
            return [Judgement(None, failure=fail) for _ in items], []
        out = []
        for it in items:
            mask = evaluate(explanation.predicate, View(it.window))
            if task == "detection":
                out.append(Judgement(int(mask.any())))
            else:
                marks = it.marks or []
                out.append(Judgement(int(bool(marks) and bool(mask[marks].all()))))
        return out, []

    async def intruder(self, items):
        keys = [Counter(token_key(it.window.tokens[j]) for j in (it.marks or [])) for it in items]
        shared = []
        for i, k in enumerate(keys):
            others = Counter()
            for j, o in enumerate(keys):
                if j != i:
                    others.update(o)
            total = sum(k.values())
            shared.append(sum(v for t, v in k.items() if t in others) / total if total else 0.0)
        return Judgement(int(np.argmin(shared))), {}

    async def simulate(self, explanation, window):
        if explanation.predicate is None:
            return None, {"failure": "the rules judge needs a rules explanation (a predicate)"}
        return evaluate(explanation.predicate, View(window)).astype(float).tolist(), {}


class ChatJudge(Judge):
    """Batches of windows per prompt to a chat client (JSON answers)."""

    name = "llm"

    def __init__(self, client, batch: int = 5):
        self.client = client
        self.batch = batch

    async def classify(self, task, explanation, items):
        if not explanation.ok:
            return [Judgement(None, failure="no explanation") for _ in items], []
        batches = [items[i:i + self.batch] for i in range(0, len(items), self.batch)]

        async def one(batch):
            messages = prompts.judge_messages(task, explanation.text, [it.text() for it in batch])
            done = await self.client.chat(messages)
            answers = prompts.parse_answers(done.text, len(batch)) if done.ok else None
            failure = done.failure or (None if answers is not None else "unparsable judge answer")
            res = ([Judgement(a) for a in answers] if answers is not None
                   else [Judgement(None, failure=failure) for _ in batch])
            return res, _call(messages, done, failure)

        results = await asyncio.gather(*(one(b) for b in batches))
        return [j for r, _ in results for j in r], [c for _, c in results]

    async def intruder(self, items):
        messages = prompts.intruder_messages([it.text() for it in items])
        done = await self.client.chat(messages)
        k = prompts.parse_intruder(done.text, len(items)) if done.ok else None
        failure = done.failure or (None if k is not None else "unparsable intruder answer")
        return Judgement(k, failure=failure if k is None else None), _call(messages, done, failure)

    async def simulate(self, explanation, window):
        return None, {"failure": "a chat endpoint gives no prompt log-probabilities; simulate with "
                                 "--judge hf or rules"}


class ProbJudge(Judge):
    """One window per prompt to a local model; answers read as probabilities."""

    name = "hf"
    gives_probabilities = True

    def __init__(self, client, min_mass: float = 1e-3):
        self.client = client
        self.min_mass = min_mass

    async def classify(self, task, explanation, items):
        if not explanation.ok:
            return [Judgement(None, failure="no explanation") for _ in items], []

        batch = [prompts.judge_one_messages(task, explanation.text, it.text()) for it in items]
        answers = await self.client.choice_probs_many(batch, ["0", "1"])
        judged, calls = [], []
        for messages, done in zip(batch, answers):
            if not done.ok:
                judged.append(Judgement(None, failure=done.failure))
                calls.append(_call(messages, done))
                continue
            p0, p1 = done.extra["probs"]["0"], done.extra["probs"]["1"]
            if p0 + p1 < self.min_mass:
                fail = f"the model did not answer 0 or 1 (P(0)+P(1) = {p0 + p1:.2g})"
                judged.append(Judgement(None, failure=fail))
                calls.append(_call(messages, done, fail))
                continue
            p = p1 / (p0 + p1)
            judged.append(Judgement(int(p >= 0.5), p))
            calls.append(_call(messages, done))
        return judged, calls

    async def intruder(self, items):
        messages = prompts.intruder_messages([it.text() for it in items], one_token=True)
        choices = [str(i) for i in range(1, len(items) + 1)]
        done = await self.client.choice_probs(messages, choices)
        if not done.ok:
            return Judgement(None, failure=done.failure), _call(messages, done)
        probs = [done.extra["probs"][c] for c in choices]
        if sum(probs) < self.min_mass:
            fail = "the model did not answer with a number"
            return Judgement(None, failure=fail), _call(messages, done, fail)
        return Judgement(int(np.argmax(probs))), _call(messages, done)

    async def simulate(self, explanation, window):
        if not explanation.ok:
            return None, {"failure": "no explanation"}
        messages = prompts.simulation_messages(explanation.text)
        answer, slots = prompts.simulation_lines(window)
        done = await self.client.slot_probs(messages, answer, slots, prompts.SIM_DIGITS)
        if not done.ok:
            return None, _call(messages, done)
        values = np.arange(len(prompts.SIM_DIGITS), dtype=float)
        out = []
        for row in done.extra["probs"]:
            p = np.asarray(row, dtype=float)
            out.append(float((p * values).sum() / p.sum()) if p.sum() > 0 else 0.0)
        return out, _call(messages, done)
