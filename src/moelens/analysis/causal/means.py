"""Each expert's mean output over a corpus (for mean-replacement interventions and sweeps)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from moelens.analysis.causal.corpus import Batch


class _MeanSink:
    """Sums each expert's output (before its router weight) over the real tokens routed to it."""

    def __init__(self, adapter: Any, layers: list[int]):
        self.sums = {l: torch.zeros(adapter.num_experts(l), adapter.hidden_size, dtype=torch.float64)
                     for l in layers}
        self.counts = {l: torch.zeros(adapter.num_experts(l), dtype=torch.long) for l in layers}
        self.real: torch.Tensor | None = None

    def routing(self, layer: int, ids: torch.Tensor, weights: torch.Tensor) -> None:
        pass

    def expert_rows(self, layer: int, token_idx: torch.Tensor, expert_idx: torch.Tensor,
                    hidden: torch.Tensor, out: torch.Tensor) -> None:
        keep = self.real[token_idx]
        self.sums[layer].index_add_(0, expert_idx[keep], out[keep].double())
        self.counts[layer] += torch.bincount(expert_idx[keep], minlength=self.counts[layer].numel())

    def shared(self, *args: Any) -> None:
        pass

    def ffn(self, *args: Any) -> None:
        pass

    def resid(self, *args: Any) -> None:
        pass


@torch.no_grad()
def mean_outputs(model: torch.nn.Module, adapter: Any, batches: Iterable[Batch], layers: list[int],
                 tick: Callable[[], None] | None = None) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Per layer: ``(means [E, H] float32, counts [E])`` of each expert's output over the corpus
    (an expert never routed has a zero mean and count 0)."""
    sink = _MeanSink(adapter, layers)
    stop = max(layers)
    for batch in batches:
        sink.real = batch.mask.reshape(-1).bool()
        with adapter.attach(sink, layers, spaces=["expert"]), adapter.stop_after(stop):
            model(input_ids=batch.ids, attention_mask=batch.mask, use_cache=False)
        if tick is not None:
            tick()
    return {l: ((sink.sums[l] / sink.counts[l].clamp_min(1)[:, None]).float(), sink.counts[l]) for l in layers}
