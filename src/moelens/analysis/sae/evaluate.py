"""Held-out quality of an SAE: fraction of variance explained, L0 and dead latents.

Computed on tokens never trained on, a chunk at a time (sums in float64):

- ``fvu`` = sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over the held-out tokens, and
  ``explained_variance`` = 1 - fvu;
- ``l0`` = mean number of nonzero latents per token;
- ``dead_fraction`` = share of latents that are zero on every held-out token (a small held-out
  set overstates it; ``ActivationStore.unit_stats(layer, space)["dead"]`` counts over all tokens).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from moelens.analysis.sae import models


@torch.no_grad()
def evaluate(model: nn.Module, kind: str, store, layer: int, space: str, tokens: np.ndarray,
             chunk_tokens: int = 8192) -> dict[str, Any]:
    """Held-out metrics of ``model`` on the store's ``tokens`` of (layer, space)."""
    width = model.num_latents
    sq_err = total = 0.0
    sum_x = None
    sum_sq = 0.0
    nonzero = 0
    fired = np.zeros(width, dtype=bool)
    for a in range(0, tokens.size, chunk_tokens):
        x = torch.from_numpy(store.dense(layer, space, tokens[a:a + chunk_tokens]))
        lat = models.latents(model, kind, x)
        x_hat = models.reconstruct(model, kind, x)
        sq_err += float((x_hat - x).double().pow(2).sum())
        xd = x.double()
        sum_x = xd.sum(0) if sum_x is None else sum_x + xd.sum(0)
        sum_sq += float(xd.pow(2).sum())
        on = (lat != 0).numpy()
        nonzero += int(on.sum())
        fired |= on.any(axis=0)
    n = int(tokens.size)
    total = sum_sq - float(sum_x.pow(2).sum()) / n if n else 0.0
    fvu = sq_err / total if total > 0 else float("nan")
    return {"n_tokens": n, "fvu": fvu, "explained_variance": 1.0 - fvu,
            "mse": sq_err / n if n else float("nan"), "l0": nonzero / n if n else float("nan"),
            "dead_fraction": float(1.0 - fired.mean()), "dead": int((~fired).sum()),
            "alive": int(fired.sum())}
