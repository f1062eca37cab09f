"""Spherical k-means of the unembedding: token families at several granularities.

The unembedding rows are mean-centred (the mean row is a direction every token shares, which
would otherwise dominate every cosine) and L2-normalised; spherical k-means then alternates
assigning each row to the centroid of highest cosine and renormalising each cluster's mean.
Initialisation is k-means++ on cosine distance with a seeded generator; an emptied cluster is
re-seeded with the row farthest from its centroid. Similarities are computed in chunks, so a
50k × 5000 problem never holds the full similarity matrix.
"""

from __future__ import annotations

import numpy as np
import torch

from moelens.errors import ConfigError

DEFAULT_KS = (10, 50, 100, 1000, 5000)
"""The cluster counts of the paper (small K ≈ domains, large K ≈ token families)."""


def prepare(unembedding: torch.Tensor) -> torch.Tensor:
    """Mean-centred, L2-normalised rows (float32)."""
    w = unembedding.detach().float()
    w = w - w.mean(0, keepdim=True)
    return w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _best(x: torch.Tensor, centroids: torch.Tensor, chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """(cluster, cosine) of the nearest centroid for every row."""
    labels, sims = [], []
    for s in range(0, x.shape[0], chunk):
        v, i = (x[s:s + chunk] @ centroids.t()).max(dim=1)
        labels.append(i)
        sims.append(v)
    return torch.cat(labels), torch.cat(sims)


def _init(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ on cosine distance (1 - cos)."""
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=gen))
    centroids = [x[first]]
    dist = (1 - x @ x[first]).clamp_min(0)
    for _ in range(1, k):
        total = float(dist.sum())
        if total <= 0:
            idx = int(torch.randint(n, (1,), generator=gen))
        else:
            idx = int(torch.multinomial(dist / total, 1, generator=gen))
        centroids.append(x[idx])
        dist = torch.minimum(dist, (1 - x @ x[idx]).clamp_min(0))
    return torch.stack(centroids)


def spherical_kmeans(x: torch.Tensor, k: int, seed: int, iters: int = 50) -> np.ndarray:
    """Cluster labels [V] (int64) of the unit rows ``x`` into ``k`` clusters."""
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ConfigError(f"K={k} clusters is larger than the vocabulary ({n} tokens); choose K of at "
                          f"most {n} with --ks")
    gen = torch.Generator().manual_seed(seed)
    centroids = _init(x, k, gen)
    labels = None
    for _ in range(iters):
        new, sims = _best(x, centroids)
        if labels is not None and torch.equal(new, labels):
            break
        labels = new
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k)
        for c in torch.nonzero(counts == 0).flatten().tolist():  # re-seed empty clusters
            far = int(sims.argmin())
            sums[c] = x[far]
            sims[far] = 2.0
        centroids = sums / sums.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return labels.numpy().astype(np.int64)


def cluster_vocabulary(unembedding: torch.Tensor, ks: list[int], seed: int) -> dict[int, np.ndarray]:
    """``{K: labels [V]}`` for every K (each with the same seed)."""
    x = prepare(unembedding)
    return {k: spherical_kmeans(x, k, seed) for k in ks}


def default_ks(vocab: int) -> list[int]:
    """The paper's Ks that are smaller than the vocabulary."""
    return [k for k in DEFAULT_KS if k < vocab]
