"""Expert interventions on any adapted model, as one context manager.

An :class:`Intervention` names a (layer, expert), what to do to it, and optionally which token
positions (sequence columns) and batch rows it applies to:

- ``zero``: the expert's slot weight becomes 0; the other slots keep theirs (no renormalising).
- ``remove``: the slot weight becomes 0 and the token's other slots are rescaled so their sum is
  the token's original total (1 where the family normalises its top-k weights, the routed scaling
  factor for DeepSeek/GLM, OLMoE's sum below 1 kept); a token whose slots are all removed keeps
  zero weights.
- ``reroute``: the expert's slots go to expert ``to`` with the same weight (if ``to`` is already
  among the token's experts it receives both slots).
- ``force_logit``: the router's raw logit of the expert is set to ``value`` (say 30 to force it
  in, ``-inf`` to force it out); the family's own scoring and top-k then decide the routing.
- ``mean``: the expert's output on its tokens is replaced by ``mean`` (its mean output over a
  corpus, see :func:`moelens.analysis.causal.means.mean_outputs`), weighted by the slot weight.
- ``scale``: the expert's contribution is multiplied by ``value`` (steering; 0 = ``zero``).

Everything acts through the adapter's intervention points (``edit_routing``,
``edit_router_logits``), after or before the family's own router code, so correction biases,
group-limited top-k and shared experts keep working as the family defines them. With no
interventions nothing is installed and the model computes bitwise what it computes stock.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from moelens.errors import ConfigError

KINDS = ("zero", "remove", "reroute", "force_logit", "mean", "scale")
"""Intervention kinds (see the module docstring)."""
ROUTING_KINDS = frozenset({"zero", "remove", "reroute", "mean", "scale"})
"""Kinds that edit the top-k routing; ``force_logit`` edits the router logits instead."""


@dataclass(frozen=True, eq=False)
class Intervention:
    """One intervention on one expert."""

    layer: int
    """decoder layer (a MoE layer)"""
    expert: int
    """expert index in that layer"""
    kind: str = "zero"
    """one of KINDS"""
    to: int | None = None
    """reroute: the expert receiving the slots"""
    value: float = 0.0
    """force_logit: the logit; scale: the factor"""
    mean: torch.Tensor | None = None
    """mean: the replacement output [H] (before the slot weight)"""
    positions: tuple[int, ...] | None = None
    """sequence positions (columns) it applies to; None = every position"""
    rows: tuple[int, ...] | None = None
    """batch rows it applies to; None = every row"""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown intervention {self.kind!r}; choose from {', '.join(KINDS)}")
        if self.kind == "reroute" and self.to is None:
            raise ConfigError("a reroute intervention needs the expert to send the tokens to ('to')")
        if self.kind == "mean" and self.mean is None:
            raise ConfigError("a mean intervention needs the expert's mean output ('mean')")

    def describe(self) -> str:
        extra = {"reroute": f"->{self.to}", "force_logit": f"={self.value:g}", "scale": f"x{self.value:g}"}
        return f"{self.kind}(L{self.layer}E{self.expert}{extra.get(self.kind, '')})"


@dataclass
class Session:
    """What an :func:`intervene` block saw: how many routed slots each intervention met."""

    interventions: list[Intervention]
    hits: list[int] = field(default_factory=list)
    """per intervention: routed (token, slot) pairs of its expert it applied to, summed over the
    forwards run in the block (routing kinds; ``force_logit`` counts tokens it applied to)"""
    shape: tuple[int, int] | None = None
    """(batch, sequence) of the last forward"""
    valid: torch.Tensor | None = None
    """[B, T] bool: the real (not padded) tokens; interventions apply and count only there"""

    def untested(self) -> list[Intervention]:
        """Routing interventions whose expert was never routed where they applied: their effect
        is unknown, not zero."""
        return [iv for iv, n in zip(self.interventions, self.hits) if iv.kind in ROUTING_KINDS and n == 0]


def check(adapter: Any, interventions: Sequence[Intervention]) -> None:
    """Every intervention names a MoE layer and experts that exist (ConfigError otherwise)."""
    moe = adapter.moe_layers()
    for iv in interventions:
        if iv.layer not in moe:
            raise ConfigError(f"layer {iv.layer} is not a MoE layer of this model (MoE layers: {moe})")
        n = adapter.num_experts(iv.layer)
        for e in (iv.expert, iv.to) if iv.kind == "reroute" else (iv.expert,):
            if not 0 <= int(e) < n:
                raise ConfigError(f"unknown expert id {e} at layer {iv.layer}: it has experts 0..{n - 1}")
        if iv.kind == "mean" and iv.mean.shape[-1] != adapter.hidden_size:
            raise ConfigError(f"mean output of L{iv.layer}E{iv.expert} has width {iv.mean.shape[-1]}, "
                              f"the model's hidden size is {adapter.hidden_size}")


def _row_mask(iv: Intervention, n: int, session: Session, device: torch.device) -> torch.Tensor | None:
    """[N] bool over the flattened tokens the intervention applies to (None = all)."""
    if iv.positions is None and iv.rows is None and session.valid is None:
        return None
    shape = session.shape
    if shape is None or shape[0] * shape[1] != n:
        raise ValueError("positions, rows and valid need the model to be called with input_ids [batch, seq]")
    b, t = shape
    keep = torch.ones(b, t, dtype=torch.bool, device=device)
    if session.valid is not None:
        if tuple(session.valid.shape) != (b, t):
            raise ValueError(f"valid mask of shape {tuple(session.valid.shape)} for a batch of {(b, t)}")
        keep &= session.valid.to(device=device, dtype=torch.bool)
    if iv.positions is not None:
        cols = torch.zeros(t, dtype=torch.bool, device=device)
        cols[[p for p in iv.positions if -t <= p < t]] = True
        keep &= cols[None, :]
    if iv.rows is not None:
        rows = torch.zeros(b, dtype=torch.bool, device=device)
        rows[[r for r in iv.rows if -b <= r < b]] = True
        keep &= rows[:, None]
    return keep.reshape(-1)


def apply_routing(iv: Intervention, ids: torch.Tensor, weights: torch.Tensor, rows: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, int]:
    """One routing intervention on ``(ids, weights)``: new ids, weights, the additive term, hits."""
    slots = ids == iv.expert
    if rows is not None:
        slots &= rows[:, None]
    hits = int(slots.sum())
    add = None
    if iv.kind in ("zero", "remove", "mean"):
        kept = weights.masked_fill(slots, 0)
        if iv.kind == "mean":
            w_e = (weights * slots).sum(-1, keepdim=True)
            add = w_e.float() * iv.mean.to(ids.device).float()[None, :]
        if iv.kind == "remove":
            total, rest = weights.float().sum(-1, keepdim=True), kept.float().sum(-1, keepdim=True)
            touched = slots.any(-1, keepdim=True) & (rest > 0)
            factor = torch.where(touched, total / torch.where(rest > 0, rest, 1.0), 1.0)
            kept = (kept.float() * factor).to(weights.dtype)
        return ids, kept, add, hits
    if iv.kind == "reroute":
        return torch.where(slots, torch.full_like(ids, int(iv.to)), ids), weights, None, hits
    if iv.kind == "scale":
        return ids, torch.where(slots, weights * iv.value, weights), None, hits
    raise ValueError(f"{iv.kind} is not a routing intervention")


def apply_logits(iv: Intervention, logits: torch.Tensor, rows: torch.Tensor | None) -> tuple[torch.Tensor, int]:
    """``force_logit``: the expert's column set to ``value`` on the chosen rows."""
    out = logits.clone()
    value = torch.tensor(float(iv.value), dtype=out.dtype, device=out.device)
    if rows is None:
        out[:, iv.expert] = value
        return out, out.shape[0]
    out[rows, iv.expert] = value
    return out, int(rows.sum())


def _input_shape(args: tuple, kwargs: dict) -> tuple[int, int] | None:
    ids = kwargs.get("input_ids", args[0] if args else None)
    if ids is None:
        ids = kwargs.get("inputs_embeds")
    return (int(ids.shape[0]), int(ids.shape[1])) if ids is not None and ids.dim() >= 2 else None


@contextlib.contextmanager
def intervene(model: torch.nn.Module, interventions: Sequence[Intervention], adapter: Any = None,
              fp32: bool = False, valid: torch.Tensor | None = None) -> Iterator[Session]:
    """Run ``model`` with ``interventions`` inside the block; yields a :class:`Session`.

    Interventions on one layer apply in the order given. ``valid`` ([B, T] bool, the batch the
    model will be called with; settable later as ``session.valid``) limits them to real tokens,
    so a pad routed to an expert neither receives an edit nor counts as testing it. ``fp32`` runs the model in float32
    inside the block (bf16 rounding noise is as large as one expert's effect) and restores its
    dtype after. Every hook is removed on exit, also on error.
    """
    from moelens.capture.adapters import Handle, get_adapter

    adapter = adapter if adapter is not None else get_adapter(model)
    ivs = list(interventions)
    check(adapter, ivs)
    session = Session(ivs, hits=[0] * len(ivs), valid=valid)
    dtype = next(model.parameters()).dtype
    handle = Handle()
    try:
        if fp32 and dtype != torch.float32:
            model.float()
        if ivs:
            def record_shape(module: Any, args: tuple, kwargs: dict) -> None:
                session.shape = _input_shape(args, kwargs)

            handle.add(model.register_forward_pre_hook(record_shape, with_kwargs=True))
        by_layer: dict[int, list[int]] = defaultdict(list)
        for i, iv in enumerate(ivs):
            by_layer[iv.layer].append(i)
        for layer, idx in sorted(by_layer.items()):
            routing = [i for i in idx if ivs[i].kind in ROUTING_KINDS]
            logits = [i for i in idx if ivs[i].kind == "force_logit"]
            if routing:
                handle.add(adapter.edit_routing(layer, _routing_edit(session, routing)))
            if logits:
                handle.add(adapter.edit_router_logits(layer, _logits_edit(session, logits)))
        yield session
    finally:
        handle.remove()
        if fp32 and dtype != torch.float32:
            model.to(dtype)


def _routing_edit(session: Session, idx: list[int]):
    def edit(ids: torch.Tensor, weights: torch.Tensor):
        total_add = None
        for i in idx:
            iv = session.interventions[i]
            rows = _row_mask(iv, ids.shape[0], session, ids.device)
            ids, weights, add, hits = apply_routing(iv, ids, weights, rows)
            session.hits[i] += hits
            if add is not None:
                total_add = add if total_add is None else total_add + add
        return ids, weights, total_add

    return edit


def _logits_edit(session: Session, idx: list[int]):
    def edit(logits: torch.Tensor) -> torch.Tensor:
        for i in idx:
            iv = session.interventions[i]
            logits, hits = apply_logits(iv, logits, _row_mask(iv, logits.shape[0], session, logits.device))
            session.hits[i] += hits
        return logits

    return edit
