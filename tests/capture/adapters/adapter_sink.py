"""A sink that keeps every call, for the adapter tests."""

from __future__ import annotations

from collections import defaultdict

import torch


class RecordingSink:
    """Records sink calls per (callback, layer); each value is a list of argument tuples."""

    def __init__(self) -> None:
        self.calls: dict[tuple[str, int], list[tuple[torch.Tensor, ...]]] = defaultdict(list)

    def _keep(self, name: str, layer: int, *tensors: torch.Tensor) -> None:
        assert all(not t.requires_grad for t in tensors), f"{name} got a tensor attached to the graph"
        self.calls[(name, layer)].append(tuple(t.clone() for t in tensors))

    def routing(self, layer, topk_ids, topk_weights):
        self._keep("routing", layer, topk_ids, topk_weights)

    def expert_rows(self, layer, token_idx, expert_idx, hidden, out):
        self._keep("expert_rows", layer, token_idx, expert_idx, hidden, out)

    def shared(self, layer, hidden, out):
        self._keep("shared", layer, hidden, out)

    def ffn(self, layer, hidden):
        self._keep("ffn", layer, hidden)

    def resid(self, layer, hidden):
        self._keep("resid", layer, hidden)

    def one(self, name: str, layer: int) -> tuple[torch.Tensor, ...]:
        """The single call of ``name`` for ``layer`` (asserts there was exactly one)."""
        got = self.calls.get((name, layer), [])
        assert len(got) == 1, f"expected one {name} call for layer {layer}, got {len(got)}"
        return got[0]

    def names(self) -> set[tuple[str, int]]:
        return set(self.calls)


def hook_count(model: torch.nn.Module) -> int:
    """Forward hooks and pre-hooks on all modules (transformers adds its own, so compare counts)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
