"""The offline explainer: the predicate that best separates a unit's firing tokens from the rest.

No LLM. It searches the space of :mod:`.predicates` on the explainer windows and the explainer's
own non-activating windows (never the test windows):

1. token sets, previous-token sets and bigram sets, each grown greedily (most precise items
   first) to the prefix with the best token-level F1;
2. every token-shape regex, context feature and registry concept on its own;
3. each of the five best so far combined (AND) with every context feature and regex and the ten
   best concepts.

Positive tokens are the highlighted ones of activating windows (above 0.3 × the window's max);
negative tokens are those where the unit does not fire, in any window; weakly firing tokens
count as neither. A candidate's score is the mean of its token-level F1 and its window-level
balanced accuracy (a window is predicted activating when the predicate holds on any token),
which is what detection asks of an explanation. Among candidates with the same score (to three
decimals) the simplest wins (fewest set items; a regex, context or concept counts one), then the
one found first, so a regex that generalises beats the list of numbers seen. Deterministic: the
same windows give the same rule.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from moelens.analysis.autointerp.examples import UnitExamples
from moelens.analysis.autointerp.explainers.base import Explainer, Explanation
from moelens.analysis.autointerp.explainers.predicates import CONTEXTS, REGEXES, View, describe, evaluate

DEFAULT_CONCEPT_GROUPS = ("text", "latex", "code", "chess")
CONJUNCTION_HEADS = 5
CONJUNCTION_CONCEPTS = 10


def concept_names(groups: tuple[str, ...]) -> list[str]:
    """Qualified names of the usable registry concepts of ``groups`` (duplicates counted once)."""
    from moelens.data.concepts import canonical_concepts, list_concepts

    names = []
    for g in groups:
        for c in canonical_concepts(list_concepts(g)):
            if c.unavailable_reason() is None:
                names.append(c.qualified_name)
    return names


class _Data:
    """Explainer windows flattened to token arrays."""

    def __init__(self, examples: UnitExamples, highlight: float, threshold: float):
        windows = examples.explain + examples.explain_negatives
        self.views = [View(w) for w in windows]
        pos, neg, win = [], [], []
        for i, w in enumerate(windows):
            acts = np.asarray(w.acts, dtype=np.float32)
            hi = np.zeros(len(acts), dtype=bool)
            if i < len(examples.explain):
                hi[w.highlighted(highlight)] = True
            pos.append(hi)
            neg.append(acts <= threshold)
            win.append(np.full(len(acts), i))
        self.pos = np.concatenate(pos) if pos else np.zeros(0, bool)
        self.neg = np.concatenate(neg) if neg else np.zeros(0, bool)
        self.win = np.concatenate(win) if win else np.zeros(0, np.int64)
        self.win_label = np.array([1] * len(examples.explain) + [0] * len(examples.explain_negatives))
        self.win_starts = np.cumsum([0] + [len(w.tokens) for w in windows[:-1]]).astype(np.int64)
        self.keys = [k for v in self.views for k in v.keys]
        self.prev = [p for v in self.views for p in v.prev_keys]

    def mask(self, spec: dict) -> np.ndarray:
        return np.concatenate([evaluate(spec, v) for v in self.views]) if self.views else np.zeros(0, bool)

    def score(self, mask: np.ndarray) -> tuple[float, float, float]:
        """(score, token F1, window balanced accuracy) of a candidate's token mask."""
        tp = int((mask & self.pos).sum())
        fp = int((mask & self.neg).sum())
        fn = int((~mask & self.pos).sum())
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        hit = np.logical_or.reduceat(mask, self.win_starts) if mask.size else np.zeros(0, bool)
        y = self.win_label.astype(bool)
        tpr = hit[y].mean() if y.any() else 0.0
        tnr = (~hit[~y]).mean() if (~y).any() else 0.0
        bal = 0.5 * (tpr + tnr)
        return 0.5 * (f1 + bal), f1, bal


def _greedy_set(items: list, pos: np.ndarray, neg: np.ndarray, max_size: int) -> list:
    """Items (keys, previous keys or pairs) by precision, cut at the prefix with the best F1."""
    tp = Counter(k for k, p in zip(items, pos) if p and k is not None)
    fp = Counter(k for k, q in zip(items, neg) if q and k is not None)
    if not tp:
        return []
    order = sorted(tp, key=lambda k: (-tp[k] / (tp[k] + fp[k]), -tp[k], str(k)))[:max_size]
    total = int(pos.sum())
    ctp = np.cumsum([tp[k] for k in order])
    cfp = np.cumsum([fp[k] for k in order])
    f1 = 2 * ctp / (2 * ctp + cfp + (total - ctp))
    return order[: int(np.argmax(f1)) + 1]


def complexity(spec: dict) -> int:
    """Items a reader must take in: one per set member, one per regex/context/concept."""
    if spec["kind"] in ("tokens", "prev_tokens", "bigrams"):
        return len(spec["values"])
    if spec["kind"] == "and":
        return 1 + sum(complexity(p) for p in spec["parts"])
    return 1


def _rank(score: tuple[float, float, float], spec: dict) -> tuple[float, int]:
    """Best score first (to 3 decimals, so noise does not buy complexity), then the simpler rule."""
    return round(score[0], 3), -complexity(spec)


class RulesExplainer(Explainer):
    name = "rules"

    def __init__(self, concept_groups: tuple[str, ...] = DEFAULT_CONCEPT_GROUPS, max_set: int = 12,
                 highlight: float = 0.3, threshold: float = 0.0):
        self.concepts = concept_names(tuple(concept_groups))
        self.max_set = max_set
        self.highlight = highlight
        self.threshold = threshold

    async def explain(self, examples: UnitExamples, promoted: list[str] | None = None) -> Explanation:
        return self.fit(examples)

    def candidates(self, data: _Data) -> list[dict]:
        out: list[dict] = []
        keys = _greedy_set(data.keys, data.pos, data.neg, self.max_set)
        if keys:
            out.append({"kind": "tokens", "values": keys})
        prev = _greedy_set(data.prev, data.pos, data.neg, self.max_set)
        if prev:
            out.append({"kind": "prev_tokens", "values": prev})
        pairs = [(p, k) if p is not None else None for p, k in zip(data.prev, data.keys)]
        bigrams = _greedy_set(pairs, data.pos, data.neg, self.max_set)
        if bigrams:
            out.append({"kind": "bigrams", "values": [list(b) for b in bigrams]})
        out += [{"kind": "regex", "name": r} for r in REGEXES]
        out += [{"kind": "context", "name": c} for c in CONTEXTS]
        out += [{"kind": "concept", "name": c} for c in self.concepts]
        return out

    def fit(self, examples: UnitExamples) -> Explanation:
        data = _Data(examples, self.highlight, self.threshold)
        if not data.pos.any():
            return Explanation(None, failure="no highlighted tokens in the explainer windows")
        singles = self.candidates(data)
        masks = [data.mask(spec) for spec in singles]
        scored = [data.score(m) for m in masks]
        best = max(range(len(singles)), key=lambda i: (_rank(scored[i], singles[i]), -i))
        best_score, best_spec = scored[best], singles[best]
        heads = sorted(range(len(singles)), key=lambda i: (-scored[i][0], i))[:CONJUNCTION_HEADS]
        concepts = sorted((i for i, s in enumerate(singles) if s["kind"] == "concept"), key=lambda i: -scored[i][0])
        extras = [i for i, s in enumerate(singles) if s["kind"] in ("context", "regex")] + concepts[:CONJUNCTION_CONCEPTS]
        for h in heads:
            for j in extras:
                if j == h:
                    continue
                spec = {"kind": "and", "parts": [singles[h], singles[j]]}
                sc = data.score(masks[h] & masks[j])
                if _rank(sc, spec) > _rank(best_score, best_spec):
                    best_score, best_spec = sc, spec
        return Explanation(describe(best_spec), predicate=best_spec,
                           fit={"score": round(best_score[0], 6), "token_f1": round(best_score[1], 6),
                                "window_balanced_accuracy": round(best_score[2], 6)})
