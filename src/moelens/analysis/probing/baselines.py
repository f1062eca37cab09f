"""The size-matched baseline across models (``--dense_store``): a dense model's ``ffn`` units
probed on random token subsets the size of each expert dataset of the MoE (control
``dense_store``, see :mod:`.dataset`).

The dense store is sampled with the same concepts and seeds as the MoE store (once per seed),
and each MoE layer is matched to the dense layer of the same relative depth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moelens.analysis.probing import concepts as concept_glue
from moelens.analysis.probing.dataset import dense_store_units, matched_layer
from moelens.analysis.probing.prepare import Prepared
from moelens.errors import StoreError


class DenseBaseline:
    """Prepared ``dense_store`` units for each MoE layer, one concept sample per seed."""

    def __init__(self, dense: Any, path: Path, concepts: list[Any], budget: int,
                 kmax: int, min_per_class: int):
        if not any("ffn" in dense.spaces(l) for l in dense.layers):
            raise StoreError(f"dense store {path} has no ffn space; capture ffn there or drop --dense_store")
        self.dense, self.concepts, self.budget = dense, concepts, budget
        self.kmax, self.min_per_class = kmax, min_per_class
        self.dense_layers = [l for l in dense.layers if "ffn" in dense.spaces(l)]
        self._samples: dict[int, list] = {}

    def units(self, layer: int, moe_layers: list[int], seed: int,
              prepared: list[Prepared]) -> list[Prepared]:
        """Size-matched dense units for the expert datasets in ``prepared`` (MoE ``layer``)."""
        names = [concept_glue.name_of(c) for c in self.concepts]
        sizes = [(names.index(p.meta["concept"]), p.meta["expert"], p.n_pos, p.n_neg)
                 for p in prepared if p.meta["space"] == "expert" and p.meta["control"] == "none"]
        if seed not in self._samples:
            text = concept_glue.StoreText(self.dense)
            self._samples[seed] = [concept_glue.sample(self.dense, c, self.budget, seed, text)
                                   for c in self.concepts]
        dense_layer = matched_layer(layer, moe_layers, self.dense_layers)
        return list(dense_store_units(self.dense, dense_layer, self._samples[seed], sizes,
                                      layer=layer, seed=seed, kmax=self.kmax,
                                      min_per_class=self.min_per_class))
