"""The two sparse autoencoders: TopK (EleutherAI sparsify's ``SparseCoder``) and ReLU + L1.

Both share one parameterisation, so one training loop, one file format and one store encoder
serve both: ``encoder`` (a Linear d_in -> W), ``W_dec`` [W, d_in] with unit-norm rows, ``b_dec``
[d_in]; latents ``a = act(W_enc (x - b_dec) + b_enc)`` and reconstruction ``x_hat = a W_dec +
b_dec``. TopK keeps the k largest of relu(...) per token; ReLU + L1 keeps relu(...) and pays an
L1 penalty on the latents (with unit-norm decoder rows a latent's value is the length it adds
along its direction, so the penalty cannot be dodged by shrinking latents and growing decoders).

Losses follow sparsify's conventions: the reconstruction term is the fraction of variance
unexplained (FVU, squared error over the batch's total variance), AuxK (TopK only) makes the
dead latents predict the residual, and the L1 term is divided by the batch's root-mean-square
distance from its mean, so both terms are dimensionless and the coefficients do not depend on
the scale of the activations.
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import Any

import torch
from torch import nn

KINDS = ("topk", "relu_l1")
"""``topk``: sparsify's SparseCoder (k largest latents); ``relu_l1``: ReLU latents, L1 penalty."""


def sparsify() -> Any:
    """The ``sparsify`` package, imported quietly (it prints a Triton notice on import).

    Its Triton decoder kernel is switched off (sparsify's own ``SPARSIFY_DISABLE_TRITON``, read
    at import): training here runs on CPU tensors, which that kernel cannot take.
    """
    os.environ.setdefault("SPARSIFY_DISABLE_TRITON", "1")
    with contextlib.redirect_stdout(io.StringIO()):
        import sparsify as module
    return module


class ReluL1Sae(nn.Module):
    """A ReLU sparse autoencoder trained with an L1 penalty; parameters named as sparsify's."""

    def __init__(self, d_in: int, num_latents: int):
        super().__init__()
        self.d_in = d_in
        self.num_latents = num_latents
        self.encoder = nn.Linear(d_in, num_latents)
        self.W_dec = nn.Parameter(torch.zeros(num_latents, d_in))
        self.b_dec = nn.Parameter(torch.zeros(d_in))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.encoder(x - self.b_dec))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return latents @ self.W_dec + self.b_dec

    @torch.no_grad()
    def set_decoder_norm_to_unit_norm(self) -> None:
        eps = torch.finfo(self.W_dec.dtype).eps
        self.W_dec.data /= self.W_dec.data.norm(dim=1, keepdim=True) + eps

    @torch.no_grad()
    def remove_gradient_parallel_to_decoder_directions(self) -> None:
        """Keep decoder rows on the unit sphere to first order (as sparsify does for TopK)."""
        if self.W_dec.grad is None:
            return
        along = (self.W_dec.grad * self.W_dec.data).sum(dim=1, keepdim=True)
        self.W_dec.grad -= along * self.W_dec.data


def build(kind: str, d_in: int, num_latents: int, k: int, generator: torch.Generator) -> nn.Module:
    """A fresh SAE of ``kind`` with seeded weights: encoder rows uniform in ±1/sqrt(d_in)
    (nn.Linear's default, drawn from ``generator``), zero biases, the decoder the encoder's
    transpose with unit-norm rows (the usual tied initialisation)."""
    if kind == "topk":
        cfg = sparsify().SparseCoderConfig(num_latents=num_latents, k=k, activation="topk")
        with torch.random.fork_rng(devices=[]):  # its constructor draws from the global RNG
            model = sparsify().SparseCoder(d_in, cfg, device="cpu", dtype=torch.float32)
    elif kind == "relu_l1":
        with torch.random.fork_rng(devices=[]):
            model = ReluL1Sae(d_in, num_latents)
    else:
        raise ValueError(f"unknown SAE kind {kind!r}")
    bound = 1.0 / d_in ** 0.5
    with torch.no_grad():
        w = torch.rand(num_latents, d_in, generator=generator, dtype=torch.float32) * (2 * bound) - bound
        model.encoder.weight.copy_(w)
        model.encoder.bias.zero_()
        model.W_dec.copy_(w)
        model.b_dec.zero_()
    model.set_decoder_norm_to_unit_norm()
    return model


def latents(model: nn.Module, kind: str, x: torch.Tensor) -> torch.Tensor:
    """Dense [n, W] latents of ``x`` (zeros outside the top k for TopK)."""
    if kind == "relu_l1":
        return model.encode(x)
    acts, idx, _ = model.encode(x)
    out = torch.zeros(x.shape[0], model.num_latents, dtype=acts.dtype)
    return out.scatter_(1, idx, acts)


def reconstruct(model: nn.Module, kind: str, x: torch.Tensor) -> torch.Tensor:
    if kind == "relu_l1":
        return model.decode(model.encode(x))
    acts, idx, _ = model.encode(x)
    return model.decode(acts, idx)


def losses(model: nn.Module, kind: str, x: torch.Tensor, dead_mask: torch.Tensor | None,
           auxk_alpha: float, l1_coef: float) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """(loss to minimise, its parts as floats, indices of the latents that fired [n, ·])."""
    total_variance = (x - x.mean(0)).pow(2).sum()
    if kind == "topk":
        out = model(x, dead_mask=dead_mask if auxk_alpha > 0 else None, total_variance=total_variance)
        loss = out.fvu + auxk_alpha * out.auxk_loss
        fired = out.latent_indices[out.latent_acts > 0]
        return loss, {"fvu": out.fvu.item(), "aux": out.auxk_loss.item()}, fired
    a = model.encode(x)
    fvu = (model.decode(a) - x).pow(2).sum() / total_variance
    rms = (total_variance / x.shape[0]).sqrt()
    l1 = a.sum(dim=1).mean() / rms
    fired = torch.nonzero(a > 0)[:, 1]
    return fvu + l1_coef * l1, {"fvu": fvu.item(), "aux": l1.item()}, fired


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The four tensors of the saved format (see :mod:`moelens.store.derived`)."""
    return {"encoder.weight": model.encoder.weight.detach().contiguous(),
            "encoder.bias": model.encoder.bias.detach().contiguous(),
            "W_dec": model.W_dec.detach().contiguous(), "b_dec": model.b_dec.detach().contiguous()}
