"""Language-model loss of a batch, devices and autocast, and validation loss.

The loss is computed here from ``logits`` and the model's ``aux_loss`` instead of the model's
``.loss``: the next-token targets are explicit (no assumption about label shifting inside the
model), and validation can report pure cross-entropy while training optimises
cross-entropy + auxiliary load-balancing loss, exactly what ``.loss`` holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from moelens.errors import ConfigError


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA when available; ``cuda`` without a GPU is a ConfigError."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device=cuda but no CUDA GPU is visible; use --device cpu or auto")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def resolve_bf16(dtype: str, device: torch.device) -> bool:
    """Whether to autocast to bf16: ``auto`` means on a GPU that supports it."""
    if dtype == "fp32":
        return False
    supported = device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_bf16_supported())
    if dtype == "bf16" and not supported:
        raise ConfigError(f"dtype=bf16 is not supported on {device}; use --dtype fp32 or auto")
    return dtype == "bf16" or (dtype == "auto" and device.type == "cuda" and supported)


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when enabled, else a no-op."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def forward_losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(total, cross_entropy, aux)`` for inputs ``x`` and next-token targets ``y`` [B, T]."""
    out = model(input_ids=x)
    logits = out.logits if hasattr(out, "logits") else out[0]
    ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
    aux = getattr(out, "aux_loss", None)
    if aux is None:
        aux = torch.zeros((), device=ce.device)
    aux = aux.float()
    return ce + aux, ce, aux


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Evaluation mode and no gradients; restores training mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def cross_entropy_sum(model: nn.Module, sampler, offsets: np.ndarray, batch_size: int,
                      device: torch.device, bf16: bool, progress=None) -> tuple[float, int]:
    """Summed next-token cross-entropy (nats) and token count over the windows at ``offsets``."""
    total, count = 0.0, 0
    with eval_mode(model):
        for start in range(0, len(offsets), batch_size):
            x, y = sampler.windows(offsets[start:start + batch_size])
            x, y = x.to(device), y.to(device)
            with autocast(device, bf16):
                out = model(input_ids=x)
            logits = out.logits if hasattr(out, "logits") else out[0]
            total += F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1),
                                     reduction="sum").item()
            count += y.numel()
            if progress is not None:
                progress.update(1)
    return total, count
