"""Jensen–Shannon divergence in bits, with the small-sample null the paper subtracts.

An expert that saw n tokens has an empirical distribution that differs from its layer's even if
its tokens were drawn from the layer's distribution: the JSD of a small sample is biased upward.
The null B is the mean JSD of ``draws`` multinomial samples of the same size n from the layer's
distribution; specialization = JSD − B (≈ 0 for an expert that routes like its layer, whatever
n; it can dip slightly below 0 by chance, and is reported as is).
"""

from __future__ import annotations

import numpy as np


def _normalise(counts: np.ndarray, eps: float) -> np.ndarray:
    p = np.asarray(counts, dtype=np.float64) + eps
    return p / p.sum(axis=-1, keepdims=True)


def jsd_bits(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """JSD₂ of distributions along the last axis, in [0, 1] (0·log 0 = 0)."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(a > 0, a * np.log2(a / np.where(m > 0, m, 1.0)), 0.0)
        return terms.sum(axis=-1)

    return np.clip(0.5 * kl(p) + 0.5 * kl(q), 0.0, 1.0)


def specialization(counts: np.ndarray, layer_counts: np.ndarray, rng: np.random.Generator,
                   draws: int = 10, eps: float = 1e-12) -> tuple[float, float, float]:
    """``(jsd, null, jsd - null)`` of one expert's counts against its layer's (both [K])."""
    counts = np.asarray(counts, dtype=np.float64)
    n = int(round(counts.sum()))
    if n == 0:
        nan = float("nan")
        return nan, nan, nan
    layer = _normalise(layer_counts, eps)
    raw = float(jsd_bits(_normalise(counts, eps), layer))
    samples = rng.multinomial(n, layer, size=draws)
    null = float(jsd_bits(_normalise(samples, eps), layer[None, :]).mean()) if draws else 0.0
    return raw, null, raw - null
