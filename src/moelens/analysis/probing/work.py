"""Probing work cut into items: (seed, layer, block of units), the unit of resume and of ranks.

A layer's units are probed a block at a time: its dense units (shared expert, dense MLP) as one
block, its experts in blocks of :data:`EXPERT_BLOCK`. Each item is fitted on its own and saved as
one part file, so memory holds one block's prepared units (not a layer's: 64 experts x 58
concepts x 4 controls would be ~15k units), an interrupted run resumes item by item, and under
``torchrun`` rank r takes items r, r + N, r + 2N, ... The items and their fits do not depend on
the number of processes, so the merged table is the same as one process's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from moelens.analysis.probing import core, table
from moelens.analysis.probing.dataset import LayerData

EXPERT_BLOCK = 8
"""Experts per work item (a block's prepared units: 8 experts x concepts x controls)."""


@dataclass(frozen=True)
class Item:
    """One piece of probing work: the dense units of a layer, or experts [first, stop) of it."""

    seed: int
    layer: int
    first: int = -1
    """first expert of the block; -1 for the layer's dense units"""
    stop: int = -1

    @property
    def dense(self) -> bool:
        return self.first < 0

    @property
    def name(self) -> str:
        block = "dense" if self.dense else f"e{self.first:04d}-{self.stop - 1:04d}"
        return f"seed{self.seed}_layer{self.layer}_{block}"


def plan(store: Any, layers: list[int], seeds: list[int], spaces: tuple[str, ...]) -> list[Item]:
    """Every item of a run, in the order of the merged table (seed, layer, dense then experts)."""
    items = []
    for seed in seeds:
        for layer in layers:
            have = store.spaces(layer)
            if any(s in spaces and s in have for s in ("shared", "ffn")):
                items.append(Item(seed, layer))
            if "expert" in spaces and "expert" in have:
                E = int(store.num_experts(layer))
                items += [Item(seed, layer, e, min(e + EXPERT_BLOCK, E)) for e in range(0, E, EXPERT_BLOCK)]
    return items


class Prober:
    """Probes items, keeping the current (seed, layer)'s :class:`LayerData` and each seed's
    concept samples between consecutive items (items come sorted by seed and layer)."""

    def __init__(self, store: Any, cfg: Any, sample: Any, model: str, fitter: str, device: str,
                 dense_baseline: Any = None, moe_layers: list[int] | None = None):
        self.store, self.cfg, self.sample, self.model = store, cfg, sample, model
        self.fitter, self.device = fitter, device
        self.dense_baseline, self.moe_layers = dense_baseline, moe_layers or []
        self._samples: dict[int, list] = {}
        self._data: LayerData | None = None

    def samples(self, seed: int) -> list:
        if seed not in self._samples:
            self._samples = {seed: self.sample(seed)}  # one seed's samples at a time
        return self._samples[seed]

    def layer_data(self, seed: int, layer: int) -> LayerData:
        d = self._data
        if d is None or d.seed != seed or d.layer != layer:
            self._data = None  # let the previous layer's arrays go first
            cfg = self.cfg
            self._data = LayerData(self.store, layer, self.samples(seed), seed=seed,
                                   spaces=tuple(cfg.spaces), semantics=cfg.semantics,
                                   baseline_space=cfg.baseline_space, baselines=cfg.baselines,
                                   null=cfg.null, kmax=max(cfg.ks), min_per_class=cfg.min_samples)
        return self._data

    def units(self, item: Item) -> Iterator:
        data = self.layer_data(item.seed, item.layer)
        if item.dense:
            return data.units(experts=range(0), dense=True)
        return data.units(experts=range(item.first, item.stop), dense=False)

    def probe(self, item: Item):
        """The tidy table rows of one item."""
        prepared = list(self.units(item))
        if self.dense_baseline is not None and not item.dense and item.layer in self.moe_layers:
            prepared += self.dense_baseline.units(item.layer, self.moe_layers, item.seed, prepared)
        records = core.probe_units(prepared, self.cfg.ks, fitter=self.fitter, device=self.device,
                                   seed=item.seed)
        return table.to_frame(records, self.model, self.cfg.semantics)
