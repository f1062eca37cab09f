"""Knowledge control: can a domain's knowledge be switched off by removing a few experts?

Following Monet (arXiv 2412.04139): experts are ranked by how specific they are to one domain of
a labelled corpus, either by routing (share of the domain's tokens routed to the expert minus its
mean share over the other domains) or by attribution (an ablation sweep's Δ loss on the domain
minus its mean Δ loss on the others). The top n are ablated together for n on a grid, and the
loss on every domain is measured against the unmodified model: the curve. The control ablates n
experts drawn at random (seeded, several draws) from the same layers. Knowledge is controlled
when the domain's loss rises and the others' do not, and the random control stays flat.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from moelens.analysis.causal.corpus import Windows
from moelens.analysis.causal.interventions import Intervention, intervene
from moelens.analysis.causal.sweep import Cell
from moelens.errors import ConfigError


class _RoutingCounts:
    """Sink counting each domain's real-token slots per expert."""

    def __init__(self, adapter: Any, layers: list[int], n_domains: int):
        self.counts = {l: torch.zeros(n_domains, adapter.num_experts(l), dtype=torch.float64) for l in layers}
        self.real: torch.Tensor | None = None
        self.domain: torch.Tensor | None = None  # [N] domain of each flattened token

    def routing(self, layer: int, ids: torch.Tensor, weights: torch.Tensor) -> None:
        keep = self.real
        e = self.counts[layer].shape[1]
        flat = (self.domain[keep, None] * e + ids[keep]).reshape(-1)
        self.counts[layer].view(-1).index_add_(0, flat, torch.ones(flat.numel(), dtype=torch.float64))

    def expert_rows(self, *args: Any) -> None:
        pass

    def shared(self, *args: Any) -> None:
        pass

    def ffn(self, *args: Any) -> None:
        pass

    def resid(self, *args: Any) -> None:
        pass


@torch.no_grad()
def routing_shares(model: torch.nn.Module, adapter: Any, windows: Windows, layers: list[int]) -> dict[int, torch.Tensor]:
    """Per layer ``[D, E]``: the share of each domain's real tokens routed to each expert."""
    sink = _RoutingCounts(adapter, layers, len(windows.domains))
    tokens = torch.zeros(len(windows.domains), dtype=torch.float64)
    for batch in windows.batches:
        sink.real = batch.mask.reshape(-1).bool()
        sink.domain = batch.domain[:, None].expand_as(batch.ids).reshape(-1)
        tokens.index_add_(0, batch.domain, batch.mask.sum(-1).double())
        with adapter.attach(sink, layers, spaces=["expert_gate"]), adapter.stop_after(max(layers)):
            model(input_ids=batch.ids, attention_mask=batch.mask, use_cache=False)
    return {l: c / tokens.clamp_min(1)[:, None] for l, c in sink.counts.items()}


def _specificity(values: torch.Tensor, d: int) -> torch.Tensor:
    """values [D, ...] -> value on domain d minus the mean over the other domains."""
    others = torch.cat([values[:d], values[d + 1:]])
    return values[d] - others.mean(0)


def rank_by_routing(shares: dict[int, torch.Tensor], d: int) -> list[tuple[Cell, float]]:
    """Every (layer, expert), most specific to domain ``d`` first (ties: lower layer, expert)."""
    scored = [(Cell(l, e), float(s)) for l, sh in sorted(shares.items())
              for e, s in enumerate(_specificity(sh, d).tolist())]
    return sorted(scored, key=lambda cs: (-cs[1], cs[0]))


def rank_by_attribution(rows: Sequence[dict[str, Any]], domains: list[str], d: int) -> list[tuple[Cell, float]]:
    """Cells of a sweep's rows, largest Δ loss on domain ``d`` over the others' mean first;
    untested cells come last (their effect is unknown)."""
    by: dict[Cell, dict[str, float]] = {}
    for r in rows:
        by.setdefault(Cell(r["layer"], r["expert"]), {})[r["domain"]] = r["delta_loss"]
    scored = []
    for cell, vals in by.items():
        v = torch.tensor([vals.get(name, float("nan")) for name in domains], dtype=torch.float64)
        s = float(_specificity(v, d))
        scored.append((cell, s if s == s else float("-inf")))
    return sorted(scored, key=lambda cs: (-cs[1], cs[0]))


@torch.no_grad()
def domain_losses(model: torch.nn.Module, adapter: Any, windows: Windows, cells: Sequence[Cell],
                  ablation: str = "zero", fp32: bool = False) -> np.ndarray:
    """Mean next-token loss per domain with ``cells`` ablated together (none: the model as is)."""
    ivs = [Intervention(c.layer, c.expert, ablation) for c in cells]
    n_dom = len(windows.domains)
    total, count = np.zeros(n_dom), np.zeros(n_dom)
    for batch in windows.batches:
        with intervene(model, ivs, adapter=adapter, fp32=fp32, valid=batch.mask.bool()):
            logits = model(input_ids=batch.ids, attention_mask=batch.mask, use_cache=False).logits
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        ce = -logp.gather(-1, batch.ids[:, 1:, None]).squeeze(-1)
        valid = batch.mask[:, 1:].double()
        np.add.at(total, batch.domain.numpy(), (ce.double() * valid).sum(-1).numpy())
        np.add.at(count, batch.domain.numpy(), valid.sum(-1).numpy())
    return total / np.maximum(count, 1)


def curve(model: torch.nn.Module, adapter: Any, windows: Windows, ranking: Sequence[tuple[Cell, float]],
          domain: str, ns: Sequence[int], controls: int, seed: int, ablation: str = "zero",
          base: np.ndarray | None = None, tick: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Loss per domain with the top-n ranked cells ablated, and with n random cells (``controls``
    seeded draws from the ranked cells' pool), for each n in ``ns``: tidy rows."""
    pool = [c for c, _ in ranking]
    if max(ns) > len(pool):
        raise ConfigError(f"n={max(ns)} exceeds the {len(pool)} experts available; use smaller --ns")
    base = domain_losses(model, adapter, windows, [], ablation) if base is None else base
    rng = np.random.default_rng(seed)
    rows = []

    def emit(selection: str, n: int, draw: int, cells: list[Cell]) -> None:
        losses = domain_losses(model, adapter, windows, cells, ablation)
        for i, name in enumerate(windows.domains):
            rows.append({"target_domain": domain, "selection": selection, "n": n, "draw": draw,
                         "domain": name, "loss": float(losses[i]), "base_loss": float(base[i]),
                         "delta_loss": float(losses[i] - base[i]),
                         "experts": " ".join(f"L{c.layer}E{c.expert}" for c in cells)})
        if tick is not None:
            tick()

    for n in ns:
        emit("ranked", n, 0, pool[:n])
        for draw in range(controls):
            pick = sorted(rng.choice(len(pool), size=n, replace=False).tolist())
            emit("random", n, draw, [pool[i] for i in pick])
    return rows


def summarise(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (target domain, n): Δ loss on the target and on the other domains, ranked and random."""
    out = []
    keys = sorted({(r["target_domain"], r["n"]) for r in rows}, key=lambda k: (k[0], k[1]))
    for target, n in keys:
        entry: dict[str, Any] = {"target_domain": target, "n": n}
        for selection in ("ranked", "random"):
            sel = [r for r in rows if r["target_domain"] == target and r["n"] == n and r["selection"] == selection]
            on = [r["delta_loss"] for r in sel if r["domain"] == target]
            off = [r["delta_loss"] for r in sel if r["domain"] != target]
            entry[f"{selection}_delta_target"] = float(np.mean(on)) if on else float("nan")
            entry[f"{selection}_delta_others"] = float(np.mean(off)) if off else float("nan")
        entry["specificity"] = entry["ranked_delta_target"] - entry["ranked_delta_others"]
        entry["control_specificity"] = entry["random_delta_target"] - entry["random_delta_others"]
        out.append(entry)
    return out
