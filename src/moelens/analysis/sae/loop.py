"""The SAE training loop, with checkpoints that make a killed run resume exactly.

One step, in sparsify's order: renormalise the decoder rows to unit norm, compute the loss on the
step's batch (FVU + AuxK for TopK, FVU + L1 for ReLU), backpropagate, remove the gradient
component along each decoder row, take an Adam step. The learning rate warms up linearly over
``lr_warmup`` steps and decays linearly to zero over the last ``lr_decay`` share of the steps;
the L1 coefficient (ReLU) ramps up over the first ``l1_warmup`` share.

For AuxK a latent counts as dead once it has not fired for ``dead_tokens`` training tokens (the
per-latent counter is part of the checkpoint). Every ``log_every`` steps a point is added to the
loss curve: mean training FVU and auxiliary term since the last point, the FVU on a fixed sample
of held-out tokens, the learning rate and the dead share. A checkpoint (weights, Adam state, step,
counters, curve, partial sums) is written atomically every ``ckpt_every`` steps; the batches
depend only on the seed and the step (:mod:`.data`), so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from moelens.analysis.sae import models
from moelens.analysis.sae.data import Batches
from moelens.errors import CheckpointError
from moelens.rundir import atomic_path

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class LoopSettings:
    """What the loop needs from the command's config (resolved values)."""

    kind: str
    steps: int
    lr: float
    lr_warmup: int
    lr_decay: float
    auxk_alpha: float
    l1_coef: float
    l1_warmup: float
    dead_tokens: int
    log_every: int
    ckpt_every: int


def lr_at(step: int, s: LoopSettings) -> float:
    """Learning rate of step ``step`` (0-based): linear warmup, flat, linear decay to 0."""
    warm = min(1.0, (step + 1) / s.lr_warmup) if s.lr_warmup > 0 else 1.0
    decay_steps = int(round(s.lr_decay * s.steps))
    left = s.steps - step
    decay = min(1.0, left / decay_steps) if decay_steps > 0 else 1.0
    return s.lr * warm * decay


def l1_at(step: int, s: LoopSettings) -> float:
    """L1 coefficient of step ``step``: ramped up linearly over the first ``l1_warmup`` share of
    the steps, so the penalty does not shrink latents before the dictionary has formed."""
    ramp = int(round(s.l1_warmup * s.steps))
    return s.l1_coef * min(1.0, (step + 1) / ramp) if ramp > 0 else s.l1_coef


def _save(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file must not look like a fresh start
        raise CheckpointError(f"SAE checkpoint {path} is unreadable ({type(exc).__name__}); pass "
                              "--overwrite to start the training again") from None


@torch.no_grad()
def _fvu(model: nn.Module, kind: str, x: torch.Tensor) -> float:
    err = (models.reconstruct(model, kind, x) - x).double().pow(2).sum()
    return float(err / (x.double() - x.double().mean(0)).pow(2).sum())


def fit(model: nn.Module, batches: Batches, probe: torch.Tensor, s: LoopSettings, work: Path,
        quiet: bool = False) -> list[dict[str, float]]:
    """Train ``model`` for ``s.steps`` steps (resuming from ``work/checkpoint.pt`` if there);
    returns the loss curve. ``probe`` is the held-out sample the curve's ``heldout_fvu`` uses."""
    opt = torch.optim.Adam(model.parameters(), lr=s.lr)
    ckpt = work / CHECKPOINT
    if ckpt.exists():
        state = _load(ckpt)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, since_fired, curve = int(state["step"]), state["since_fired"], list(state["curve"])
        sums = [float(v) for v in state["sums"]]
    else:
        with torch.no_grad():  # centre the inputs at the start, as sparsify does: b_dec = the
            model.b_dec.copy_(batches.batch(0).mean(dim=0))  # first batch's mean
        step, curve, sums = 0, [], [0.0, 0.0, 0.0]
        since_fired = torch.zeros(model.num_latents, dtype=torch.long)
        curve.append(_point(model, s, 0, probe, None, since_fired))
    bar = tqdm(total=s.steps, initial=step, desc="sae", unit="step", dynamic_ncols=True,
               disable=quiet, delay=1.0)
    model.train()
    while step < s.steps:
        x = batches.batch(step)
        model.set_decoder_norm_to_unit_norm()
        dead = since_fired > s.dead_tokens
        loss, parts, fired = models.losses(model, s.kind, x, dead, s.auxk_alpha, l1_at(step, s))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        model.remove_gradient_parallel_to_decoder_directions()
        for group in opt.param_groups:
            group["lr"] = lr_at(step, s)
        opt.step()
        since_fired += x.shape[0]
        since_fired[fired] = 0
        sums = [sums[0] + parts["fvu"], sums[1] + parts["aux"], sums[2] + 1]
        step += 1
        bar.update(1)
        if step % s.log_every == 0 or step == s.steps:
            curve.append(_point(model, s, step, probe, sums, since_fired))
            bar.set_postfix(fvu=f"{curve[-1]['fvu']:.4f}", heldout=f"{curve[-1]['heldout_fvu']:.4f}")
            sums = [0.0, 0.0, 0.0]
        if step % s.ckpt_every == 0 and step < s.steps:
            _save(ckpt, {"step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
                         "since_fired": since_fired, "curve": curve, "sums": sums})
    bar.close()
    model.set_decoder_norm_to_unit_norm()  # the saved decoder has unit-norm rows exactly
    model.eval()
    return curve


def _point(model: nn.Module, s: LoopSettings, step: int, probe: torch.Tensor,
           sums: list[float] | None, since_fired: torch.Tensor) -> dict[str, float]:
    """One point of the loss curve (step 0: the initial model, no training means yet)."""
    n = sums[2] if sums else 0
    return {"step": step, "fvu": sums[0] / n if n else float("nan"),
            "aux": sums[1] / n if n else float("nan"), "heldout_fvu": _fvu(model, s.kind, probe),
            "lr": lr_at(max(step - 1, 0), s),
            "dead_fraction": float((since_fired > s.dead_tokens).float().mean())}


def probe_sample(store, layer: int, space: str, heldout: np.ndarray, n: int, seed: int) -> torch.Tensor:
    """A fixed seeded sample of at most ``n`` held-out tokens for the curve's held-out FVU."""
    pick = heldout if heldout.size <= n else np.sort(
        np.random.default_rng([seed, 2]).choice(heldout, n, replace=False))
    return torch.from_numpy(store.dense(layer, space, pick))
