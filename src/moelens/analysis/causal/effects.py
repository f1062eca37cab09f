"""Effects of an intervention: Δ log p(target), Δ cross-entropy and KL to the unmodified run.

:func:`measure` computes the baseline *in the same batch* as the intervention: the batch is
run twice side by side, the interventions restricted to the second copy, so both runs see the
same shapes, padding and kernels and a difference is the intervention's, not the batching's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from moelens.analysis.causal.interventions import Intervention, intervene


@dataclass
class Effects:
    """Per-position effects of one intervened run against its baseline ([B, T-1] tensors:
    position t predicts token t+1)."""

    delta_logp: torch.Tensor
    """log p(target) intervened − baseline (target = the next token unless given)"""
    delta_ce: torch.Tensor
    """next-token cross-entropy intervened − baseline"""
    kl: torch.Tensor
    """KL(baseline ‖ intervened) of the next-token distributions, in nats"""
    valid: torch.Tensor
    """bool: positions whose next token is a real (not padded) token"""
    untested: list[Intervention]
    """interventions whose expert was never routed where they applied (effect unknown)"""

    def mean(self, name: str) -> float:
        """Mean of one effect over the valid positions (NaN if there are none)."""
        vals = getattr(self, name)[self.valid]
        return float(vals.mean()) if vals.numel() else float("nan")


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    """float32 log-softmax of logits [..., V] (fp32 even for a bf16 model)."""
    return torch.log_softmax(logits.float(), dim=-1)


def compare(base_logits: torch.Tensor, new_logits: torch.Tensor, input_ids: torch.Tensor,
            attention_mask: torch.Tensor | None = None, targets: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(delta_logp, delta_ce, kl, valid)`` for logits [B, T, V] of the same inputs.

    ``targets`` [B, T-1] (token ids scored at each position) defaults to the next tokens.
    """
    base, new = log_probs(base_logits[:, :-1]), log_probs(new_logits[:, :-1])
    nxt = input_ids[:, 1:]
    valid = torch.ones_like(nxt, dtype=torch.bool) if attention_mask is None else attention_mask[:, 1:].bool()
    ce_base = -base.gather(-1, nxt[..., None]).squeeze(-1)
    ce_new = -new.gather(-1, nxt[..., None]).squeeze(-1)
    tgt = nxt if targets is None else targets
    d_logp = (new.gather(-1, tgt[..., None]) - base.gather(-1, tgt[..., None])).squeeze(-1)
    kl = (base.exp() * (base - new)).sum(-1).clamp_min(0)
    zero = torch.zeros((), dtype=kl.dtype)
    return (torch.where(valid, d_logp, zero), torch.where(valid, ce_new - ce_base, zero),
            torch.where(valid, kl, zero), valid)


@torch.no_grad()
def measure(model: torch.nn.Module, input_ids: torch.Tensor, interventions: Sequence[Intervention],
            attention_mask: torch.Tensor | None = None, targets: torch.Tensor | None = None,
            adapter: Any = None, fp32: bool = False) -> Effects:
    """Run ``input_ids`` [B, T] with and without ``interventions`` in one batch; the effects."""
    b = input_ids.shape[0]
    ids2 = torch.cat([input_ids, input_ids])
    mask2 = None if attention_mask is None else torch.cat([attention_mask, attention_mask])
    second = tuple(range(b, 2 * b))
    ivs = [dataclasses.replace(iv, rows=second if iv.rows is None else tuple(b + r for r in iv.rows))
           for iv in interventions]
    valid2 = None if mask2 is None else mask2.bool()
    with intervene(model, ivs, adapter=adapter, fp32=fp32, valid=valid2) as session:
        kwargs = {} if mask2 is None else {"attention_mask": mask2}
        logits = model(input_ids=ids2, **kwargs).logits
    d_logp, d_ce, kl, valid = compare(logits[:b], logits[b:], input_ids, attention_mask, targets)
    untested = [interventions[i] for i, iv in enumerate(ivs) if iv in session.untested()]
    return Effects(d_logp, d_ce, kl, valid, untested)
