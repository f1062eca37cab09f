"""Glue: an activation store + sampled concept tokens -> one prepared dataset per unit.

This is the only probing module that reads the store, and it uses only the documented reader
methods (``spaces``, ``num_experts``, ``expert``, ``dense``). Each layer is read for the union of
all concepts' labelled tokens only (:class:`LayerData`), one expert at a time; every unit is then
split per concept and immediately reduced by :func:`moelens.analysis.probing.core.prepare` to
its top-k columns, so memory holds one expert's activations on the union at a time, plus the
prepared units of one block (see :mod:`.work`).

Units and controls (the ``control`` column of the results):

- ``none``: the unit itself. ``expert`` space: expert e on the tokens the store holds for it
  under the chosen routing semantics (``routed``: only tokens routed to e). ``shared`` / ``ffn``:
  the shared expert or the dense MLP (expert = -1) on all labelled tokens.
- ``routed_tokens``: the dense baseline space (``ffn`` or ``resid`` of the same layer) on exactly
  the tokens of expert e's dataset: the same data, dense units.
- ``random_routing``: the dense baseline space on a random subset of the concept's labelled
  tokens with expert e's numbers of positives and negatives. This is both the size-matched dense
  baseline and the shuffled-routing null: reassigning tokens to experts at random with the same
  loads gives each expert exactly such a subset. (The expert's *own* activations on those tokens
  do not exist in a routed MoE store -- ``zero_filled`` would only return zeros -- so the
  null is taken in the dense space.)
- ``shuffled_labels``: expert e's own activations with the labels permuted inside its dataset:
  the chance level of one unit and, taken as a max over all units, how much "best over units"
  is inflated by selection alone.
- ``dense_store`` (with ``--dense_store``): a dense model's ``ffn`` units, at the layer of the
  same relative depth, on random subsets of *that* model's sample of the concept with expert e's
  numbers of positives and negatives: the size-matched baseline across models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from moelens.analysis.probing.prepare import MIN_PER_CLASS, Prepared, prepare

UNIT_SPACES = ("expert", "shared", "ffn")
"""Spaces whose units are probed; ``resid`` serves only as a baseline space."""

BASE_CHUNK = 8192
"""Tokens per read of the baseline space (bounds the float32 copy made while reading it)."""


@dataclass
class ConceptSample:
    """A concept's labelled tokens (global token indices of the store)."""

    name: str
    group: str
    pos: np.ndarray
    neg: np.ndarray

    def label_map(self, n_tokens: int) -> np.ndarray:
        """int8 [n_tokens]: 1 positive, 0 negative, -1 not sampled."""
        lab = np.full(n_tokens, -1, dtype=np.int8)
        lab[self.neg] = 0
        lab[self.pos] = 1
        return lab


def baseline_space_for(store: Any, layer: int, choice: str) -> str | None:
    """The dense space used for baselines at ``layer`` (``auto``: ffn, else resid, else none)."""
    have = store.spaces(layer)
    if choice == "none":
        return None
    if choice == "auto":
        return next((s for s in ("ffn", "resid") if s in have), None)
    return choice if choice in have else None


class LayerData:
    """One layer's labelled tokens, read once and shared by every block of units of the layer.

    Holds the union of all concepts' sampled tokens, each concept's labels on that union
    (int8 [concepts, union]: 1 positive, 0 negative, -1 not sampled) and, read on first use,
    the dense baseline space on the union ([union, W] float32, the largest array of a layer:
    its size depends on the concept budget, never on the store's size). Units are then produced
    a block at a time (:meth:`units`): the dense units (shared / ffn), or a range of experts, each
    expert read with :meth:`ActivationStore.expert` on the union only.
    """

    def __init__(self, store: Any, layer: int, samples: list[ConceptSample], *, seed: int,
                 spaces: tuple[str, ...] = UNIT_SPACES, semantics: str = "routed",
                 baseline_space: str = "auto", baselines: bool = True, null: bool = True,
                 kmax: int = 64, min_per_class: int = MIN_PER_CLASS):
        self.store, self.layer, self.samples, self.seed = store, layer, samples, seed
        self.spaces, self.semantics, self.null = spaces, semantics, null
        self.kmax, self.min_per_class = kmax, min_per_class
        self.union = np.unique(np.concatenate([np.concatenate([c.pos, c.neg]) for c in samples]))
        self.labels = np.full((len(samples), self.union.size), -1, dtype=np.int8)
        for ci, c in enumerate(samples):
            self.labels[ci, np.searchsorted(self.union, c.neg)] = 0
            self.labels[ci, np.searchsorted(self.union, c.pos)] = 1
        self.have = store.spaces(layer)
        name = baseline_space_for(store, layer, baseline_space) if baselines else None
        self.base_name = name if name and "expert" in self.have else None
        self._base: np.ndarray | None = None

    @property
    def base(self) -> np.ndarray | None:
        """The baseline space on the union, read in chunks; kept as float16 when the store holds
        fp16 values (exact, and half the memory of the largest array of a layer)."""
        if self.base_name is not None and self._base is None:
            fp16 = (getattr(self.store, "manifest", None) or {}).get("dtype") == "fp16"
            width = int(self.store.width(self.layer, self.base_name))
            base = np.empty((self.union.size, width), dtype=np.float16 if fp16 else np.float32)
            for a in range(0, self.union.size, BASE_CHUNK):
                base[a:a + BASE_CHUNK] = self.store.dense(self.layer, self.base_name, self.union[a:a + BASE_CHUNK])
            self._base = base
        return self._base

    def base_rows(self, at: np.ndarray) -> np.ndarray:
        """float32 rows ``at`` (positions in the union) of the baseline space."""
        return np.asarray(self.base[at], dtype=np.float32)

    def num_experts(self) -> int:
        if "expert" not in self.spaces or "expert" not in self.have:
            return 0
        return int(self.store.num_experts(self.layer))

    def has_dense_units(self) -> bool:
        return any(s in self.spaces and s in self.have for s in ("shared", "ffn"))

    def _unit(self, ci: int, X: np.ndarray, y: np.ndarray, space: str, expert: int, control: str):
        meta = dict(concept=self.samples[ci].name, group=self.samples[ci].group, layer=self.layer,
                    space=space, expert=expert, control=control, seed=self.seed)
        return prepare(X, y, meta, self.seed, kmax=self.kmax, min_per_class=self.min_per_class)

    def units(self, experts: range | None = None, dense: bool = True) -> Iterator[Prepared]:
        """Prepared datasets of the dense units (``dense``) and of the ``experts`` given (all by
        default), every concept and control."""
        if dense:
            for space in ("shared", "ffn"):
                if space in self.spaces and space in self.have:
                    acts = self.store.dense(self.layer, space, self.union)
                    for ci in range(len(self.samples)):
                        rows = np.flatnonzero(self.labels[ci] >= 0)
                        yield self._unit(ci, acts[rows], self.labels[ci, rows] == 1, space, -1, "none")
                    del acts
        for e in (range(self.num_experts()) if experts is None else experts):
            yield from self._expert_units(e)

    def _expert_units(self, e: int) -> Iterator[Prepared]:
        tok, acts = self.store.expert(self.layer, e, semantics=self.semantics, tokens=self.union)
        at = np.searchsorted(self.union, np.asarray(tok, dtype=np.int64))
        for ci, c in enumerate(self.samples):
            lab = self.labels[ci, at]
            rows = np.flatnonzero(lab >= 0)
            y = lab[rows] == 1
            X = acts[rows]
            yield self._unit(ci, X, y, "expert", e, "none")
            rng = np.random.default_rng([self.seed, self.layer, e, ci])
            if self.null:
                yield self._unit(ci, X, y[rng.permutation(y.size)], "expert", e, "shuffled_labels")
            if self.base is not None:
                yield self._unit(ci, self.base_rows(at[rows]), y, self.base_name, e, "routed_tokens")
                pick = np.concatenate([rng.choice(c.pos, int(y.sum()), replace=False),
                                       rng.choice(c.neg, int((~y).sum()), replace=False)])
                yb = np.arange(pick.size) < int(y.sum())
                yield self._unit(ci, self.base_rows(np.searchsorted(self.union, pick)), yb, self.base_name,
                                 e, "random_routing")


def layer_units(store: Any, layer: int, samples: list[ConceptSample], *, seed: int,
                spaces: tuple[str, ...] = UNIT_SPACES, semantics: str = "routed",
                baseline_space: str = "auto", baselines: bool = True, null: bool = True,
                kmax: int = 64, min_per_class: int = MIN_PER_CLASS,
                experts: range | None = None, dense: bool = True) -> Iterator[Prepared]:
    """Prepared datasets of every (concept, unit, control) of one layer (or of the dense units
    and the ``experts`` asked for): :meth:`LayerData.units`."""
    data = LayerData(store, layer, samples, seed=seed, spaces=spaces, semantics=semantics,
                     baseline_space=baseline_space, baselines=baselines, null=null, kmax=kmax,
                     min_per_class=min_per_class)
    yield from data.units(experts, dense)


def matched_layer(layer: int, layers: list[int], other_layers: list[int]) -> int:
    """The layer of another model at the same relative depth (first -> first, last -> last)."""
    pos = layers.index(layer) / max(len(layers) - 1, 1)
    return other_layers[int(round(pos * (len(other_layers) - 1)))]


def dense_store_units(dense_store: Any, dense_layer: int, samples: list[ConceptSample],
                      sizes: list[tuple[int, int, int, int]], *, layer: int, seed: int,
                      kmax: int = 64, min_per_class: int = MIN_PER_CLASS) -> Iterator[Prepared]:
    """Size-matched baseline from a *dense* model's store (control ``dense_store``).

    ``sizes`` holds (concept index, expert, n_pos, n_neg) of each expert dataset of the MoE at
    ``layer``; for each, the dense model's ``ffn`` units at ``dense_layer`` are probed on a random
    subset of that model's own sample of the concept with the same numbers of positives and
    negatives (capped at what the sample has). ``samples`` are the dense store's samples."""
    union = np.unique(np.concatenate([np.concatenate([c.pos, c.neg]) for c in samples]))
    acts = dense_store.dense(dense_layer, "ffn", union)
    for ci, e, n_pos, n_neg in sizes:
        c = samples[ci]
        rng = np.random.default_rng([seed, layer, e, ci, 1])
        pick = np.concatenate([rng.choice(c.pos, min(n_pos, c.pos.size), replace=False),
                               rng.choice(c.neg, min(n_neg, c.neg.size), replace=False)])
        y = np.arange(pick.size) < min(n_pos, c.pos.size)
        meta = dict(concept=c.name, group=c.group, layer=layer, space="ffn", expert=e,
                    control="dense_store", seed=seed)
        yield prepare(acts[np.searchsorted(union, pick)], y, meta, seed, kmax=kmax,
                      min_per_class=min_per_class)
