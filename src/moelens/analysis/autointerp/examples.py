"""A unit's examples: activating windows for the explainer and for testing, and non-activating ones.

Activating windows are chunks (see :mod:`.corpus`) where the unit's largest activation exceeds
``threshold``; each remembers its decile among them (1 weakest .. 10 strongest). They are drawn:

- ``top``: the strongest first; the test set takes the next ones (the expert-level paper:
  ranks 1-20 explain, 21-30 are held out);
- ``quantile`` (default): stratified over the 10 deciles, as delphi;
- ``random``.

The explainer and test sets never share a chunk, nor do the two negative sets. Non-activating
windows come from three sources (``negatives``), each drawn with the unit's own seed:

- ``random``: chunks where the unit never fires (not routed, for an expert);
- ``others``: the top windows of other units (other experts of the layer at expert level);
- ``hard``: non-activating chunks whose tokens are most like the explainer's windows (cosine of
  hashed bags of token ids, over up to ``HARD_CANDIDATES`` random candidates).

Where a unit fires in nearly every chunk (a busy expert), there are too few windows where it
never fires; the shortfall is filled with its weakest windows, each marked ``fires=True`` and
counted in the unit's notes, so a reader can see it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from moelens.analysis.autointerp.corpus import Corpus, Window
from moelens.analysis.autointerp.units import Unit

SAMPLINGS = ("quantile", "top", "random")
NEGATIVE_SOURCES = ("random", "others", "hard")
HARD_CANDIDATES = 2000


@dataclass
class ExampleSettings:
    window: int = 32
    sampling: str = "quantile"
    n_explain: int = 40
    n_test: int = 50
    n_negative: int = 50
    min_examples: int = 20
    threshold: float = 0.0
    negatives: tuple[str, ...] = NEGATIVE_SOURCES
    pool_size: int = 40
    binary_positives: int = 10
    binary_negatives: int = 10
    binary_shared: bool = False
    seed: int = 0


@dataclass
class UnitExamples:
    unit: Unit
    status: str
    """ok, 'no activating examples' or 'too few activating examples'"""
    n_activating: int = 0
    max_act: float = 0.0
    explain: list[Window] = field(default_factory=list)
    explain_negatives: list[Window] = field(default_factory=list)
    test: list[Window] = field(default_factory=list)
    negatives: list[Window] = field(default_factory=list)
    binary_positives: list[Window] = field(default_factory=list)
    binary_negatives: list[Window] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict:
        sets = ("explain", "explain_negatives", "test", "negatives", "binary_positives", "binary_negatives")
        return {"status": self.status, "n_activating": self.n_activating, "max_act": self.max_act,
                "notes": self.notes, **{s: [w.to_json() for w in getattr(self, s)] for s in sets}}


def deciles(values: np.ndarray) -> np.ndarray:
    """1..10 by rank (10 = the largest tenth)."""
    order = np.argsort(values, kind="stable")
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.arange(len(values))
    return (10 * rank // max(len(values), 1) + 1).astype(np.int64)


def _pick(candidates: np.ndarray, maxima: np.ndarray, dec: np.ndarray, k: int, how: str,
          rng: np.random.Generator) -> np.ndarray:
    """``k`` chunk ids from ``candidates`` (aligned with ``maxima`` and ``dec``)."""
    k = min(k, len(candidates))
    if k <= 0:
        return np.zeros(0, np.int64)
    if how == "top":
        return candidates[np.argsort(-maxima, kind="stable")[:k]]
    if how == "random":
        return candidates[rng.choice(len(candidates), k, replace=False)]
    out: list[int] = []
    per = np.full(10, k // 10)
    per[10 - k % 10:] += 1  # the remainder goes to the strongest deciles
    spare: list[int] = []
    for d in range(1, 11):
        idx = np.flatnonzero(dec == d)
        take = min(per[d - 1], len(idx))
        chosen = rng.choice(idx, take, replace=False) if take else np.zeros(0, np.int64)
        out += [int(candidates[i]) for i in chosen]
        spare += [int(i) for i in np.setdiff1d(idx, chosen)]
    if len(out) < k and spare:  # thin deciles: top up at random
        extra = rng.choice(np.array(spare), min(k - len(out), len(spare)), replace=False)
        out += [int(candidates[i]) for i in extra]
    return np.array(out, dtype=np.int64)


def _first(candidates: np.ndarray, busy: set[int], k: int) -> list[int]:
    """The first ``k`` candidates not in ``busy``, in order."""
    out: list[int] = []
    for ch in candidates:
        if len(out) >= k:
            break
        if int(ch) not in busy:
            out.append(int(ch))
    return out


@dataclass
class Pool:
    """A unit's top activating chunks, with the window shown for each and its highlighted tokens
    (relative to the window), so another unit can show it as the paper's scorer did."""

    chunks: np.ndarray
    spans: dict[int, tuple[int, int]]
    marks: dict[int, list[int]]


def pools(corpus: Corpus, activations, size: int, threshold: float, highlight: float = 0.3) -> dict[Unit, Pool]:
    """Each unit's top ``size`` activating chunks, from ``(unit, act)`` pairs (for 'others')."""
    out = {}
    for u, act in activations:
        m = corpus.chunk_max(act)
        active = np.flatnonzero((m > threshold) & corpus.chunk_valid)
        top = active[np.argsort(-m[active], kind="stable")[:size]]
        spans, marks = {}, {}
        for ch in top.tolist():
            lo, hi = corpus.span(ch, act)
            seg = act[lo:hi]
            spans[ch] = (lo, hi)
            marks[ch] = [int(i) for i in np.flatnonzero(seg > highlight * float(seg.max()))]
        out[u] = Pool(top, spans, marks)
    return out


class Sampler:
    """Draws every unit's examples; ``others`` holds the top-window pools of the units of a layer."""

    def __init__(self, corpus: Corpus, settings: ExampleSettings, others: dict[Unit, Pool] | None = None):
        self.corpus = corpus
        self.s = settings
        self.others = others or {}

    def _other_chunks(self, unit: Unit, rng: np.random.Generator) -> np.ndarray:
        """Chunks from the other units' pools (same layer and space family), shuffled."""
        chunks = [p.chunks for u, p in self.others.items() if u != unit and u.layer == unit.layer
                  and u.is_expert == unit.is_expert]
        if not chunks:
            return np.zeros(0, np.int64)
        return rng.permutation(np.unique(np.concatenate(chunks)))

    def shared_draw(self, layer: int, exclude: np.ndarray, k: int) -> np.ndarray:
        """The paper's negatives: one draw per layer, the same for every unit (minus its own)."""
        rng = np.random.default_rng([self.s.seed, layer, 7])
        pool = np.unique(np.concatenate([p.chunks for u, p in self.others.items() if u.layer == layer] or
                                        [np.zeros(0, np.int64)]))
        order = rng.permutation(pool)
        return np.array(_first(order, set(exclude.tolist()), k), dtype=np.int64)

    def examples(self, unit: Unit, act: np.ndarray) -> UnitExamples:
        s, c = self.s, self.corpus
        rng = unit.seed(s.seed)
        m = c.chunk_max(act)
        valid = c.chunk_valid
        active = np.flatnonzero((m > s.threshold) & valid)
        res = UnitExamples(unit, "ok", int(active.size), float(act.max()) if act.size else 0.0)
        if active.size == 0:
            res.status = "no activating examples"
            return res
        if active.size < s.min_examples:
            res.status = "too few activating examples"
            res.notes.append(f"{active.size} activating windows, fewer than min_examples={s.min_examples}")
            return res
        dec = deciles(m[active])
        n_e = min(s.n_explain, active.size // 2)
        explain = _pick(active, m[active], dec, n_e, s.sampling, rng)
        rest = np.setdiff1d(active, explain)
        keep = np.isin(active, rest)
        if s.sampling == "top":  # held out = the next ranks
            test = rest[np.argsort(-m[rest], kind="stable")[:s.n_test]]
        else:
            test = _pick(active[keep], m[active][keep], dec[keep], s.n_test, s.sampling, rng)
        dec_of = dict(zip(active.tolist(), dec.tolist()))
        mk = lambda ch, kind, src=None: c.window_of(int(ch), act, kind, decile=dec_of.get(int(ch)),  # noqa: E731
                                                   threshold=s.threshold, source=src)
        res.explain = [mk(ch, "activating") for ch in explain]
        res.test = [mk(ch, "activating") for ch in test]
        if len(test) < s.n_test or n_e < s.n_explain:
            res.notes.append(f"only {active.size} activating windows: {len(explain)} to explain, {len(test)} to test")
        used = set(explain.tolist()) | set(test.tolist())
        neg = self._negatives(unit, act, m, explain, used, 2 * s.n_negative, rng)
        for w in neg:
            w.decile = None
        res.explain_negatives, res.negatives = neg[0::2], neg[1::2]
        fallback = sum(w.fires for w in neg)
        if fallback:
            res.notes.append(f"{fallback} of {len(neg)} non-activating windows are the unit's weakest "
                             "windows (it fires in nearly every window)")
        top_test = sorted(res.test, key=lambda w: -w.max_act)
        res.binary_positives = top_test[:s.binary_positives]
        res.binary_negatives = self._binary_negatives(unit, act, m, used, rng)
        return res

    def _negatives(self, unit: Unit, act: np.ndarray, m: np.ndarray, explain: np.ndarray, used: set[int],
                   total: int, rng: np.random.Generator) -> list[Window]:
        s, c = self.s, self.corpus
        quiet = np.flatnonzero((m <= s.threshold) & c.chunk_valid)
        sources = [src for src in s.negatives if src != "others" or self._other_chunks(unit, rng).size]
        if not sources:
            sources = ["random"]
        per = [total // len(sources) + (i < total % len(sources)) for i in range(len(sources))]
        taken: list[tuple[int, str]] = []
        busy = set(used)
        for src, k in zip(sources, per):
            if src == "random":
                cand = rng.permutation(quiet)
            elif src == "others":
                cand = self._other_chunks(unit, rng)
                cand = np.concatenate([cand[m[cand] <= s.threshold], cand[m[cand] > s.threshold]])
            else:
                pool = quiet if quiet.size <= HARD_CANDIDATES else rng.choice(quiet, HARD_CANDIDATES, replace=False)
                cand = np.zeros(0, np.int64)
                if pool.size and explain.size:
                    centroid = c.bag(explain).mean(axis=0)
                    cand = pool[np.argsort(-(c.bag(pool) @ centroid), kind="stable")]
            got = _first(cand, busy, k)
            busy.update(got)
            taken += [(ch, src) for ch in got]
        if len(taken) < total:  # too few windows where it never fires: its weakest windows
            weak = np.flatnonzero(c.chunk_valid)
            weak = weak[np.argsort(m[weak], kind="stable")]
            got = _first(weak, busy, total - len(taken))
            taken += [(ch, "random") for ch in got]
        order = rng.permutation(len(taken))
        return [c.window_of(taken[i][0], act, taken[i][1], threshold=s.threshold,
                            source=self._source_name(unit, taken[i][0]) if taken[i][1] == "others" else None)
                for i in order]

    def _source(self, unit: Unit, chunk: int) -> tuple[Unit, Pool] | None:
        for u, p in self.others.items():
            if u != unit and u.layer == unit.layer and chunk in p.spans:
                return u, p
        return None

    def _quiet(self, unit: Unit, chunk: int, act: np.ndarray) -> bool:
        """Whether ``unit`` stays at or below the threshold on the window its source shows."""
        found = self._source(unit, chunk)
        if found is None:
            return False
        lo, hi = found[1].spans[chunk]
        return float(act[lo:hi].max()) <= self.s.threshold

    def _source_name(self, unit: Unit, chunk: int) -> str | None:
        found = self._source(unit, chunk)
        return found[0].name if found else None

    def _binary_negatives(self, unit: Unit, act: np.ndarray, m: np.ndarray, used: set[int],
                          rng: np.random.Generator) -> list[Window]:
        """The paper's scorer negatives: other units' top windows as those units' pools show them
        (their highlighted tokens marked), drawn per unit preferring windows where this unit does
        not fire (the fix), or once per layer for every unit (``binary_shared``, the paper's
        scripts)."""
        s, k = self.s, self.s.binary_negatives
        own = self.others.get(unit)
        own_chunks = own.chunks if own is not None else np.zeros(0, np.int64)
        exclude = set(used) | set(own_chunks.tolist())
        if s.binary_shared:
            chosen = self.shared_draw(unit.layer, np.array(sorted(exclude), dtype=np.int64), k)
        else:
            cand = self._other_chunks(unit, rng)
            quiet = np.array([self._quiet(unit, int(ch), act) for ch in cand], dtype=bool)
            cand = np.concatenate([cand[quiet], cand[~quiet]]) if cand.size else cand
            chosen = np.array(_first(cand, exclude, k), dtype=np.int64)
        out = []
        for ch in chosen.tolist():
            found = self._source(unit, ch)
            if found is None:
                continue
            src, pool = found
            lo, hi = pool.spans[ch]
            out.append(self.corpus.window_at(lo, hi, ch, act, "others", threshold=s.threshold,
                                             source=src.name, marks=pool.marks[ch]))
        return out
