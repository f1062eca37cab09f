"""When a logistic-regression fit counts as converged: one test, the same for both fitters.

The objective is :mod:`.fit_fast`'s (sklearn's L2 logistic loss with balanced class weights and
an unpenalised intercept). At its optimum every component of the gradient ::

    g_j = C * sum_i s_i (p_i - y_i) a_ij + w_j        (a_i0 = 1 is the intercept, w_0 = 0)

is zero. A fit is *converged* when every ``|g_j|`` is at most :data:`GRAD_TOL` times that
component's own scale ``C * sum_i s_i |a_ij| + |w_j|``. The scale is per feature because a
stopping rule in absolute terms is fooled by small activations: on real captured units with
sd ~ 0.007, saga stops by its own tolerance after 9-20 iterations with an absolute gradient of
1e-3 and an F1 up to 0.5 away from the optimum's, while an iteration cap would call that fit
converged. The tolerance is one that the exact Newton solver reaches in float64 (it iterates to
this same test) and that early-stopped fits do not.
"""

from __future__ import annotations

import numpy as np
import torch

GRAD_TOL = 1e-6
"""Largest relative gradient component of a converged fit."""


def relative_gradient(A: torch.Tensor, y: torch.Tensor, s: torch.Tensor, theta: torch.Tensor,
                      C: float = 1.0, scale: torch.Tensor | None = None) -> torch.Tensor:
    """max_j |g_j| / scale_j per problem: ``A`` [B, n, 1+p] (first column ones on real rows),
    ``y``, ``s`` [B, n] (weight 0 on padding rows), ``theta`` [B, 1+p] -> [B].

    ``scale`` may pass :func:`data_scale` precomputed (the solver calls this every iteration).
    """
    reg = torch.ones(theta.shape[1], dtype=A.dtype, device=A.device)
    reg[0] = 0.0
    p = torch.sigmoid(torch.bmm(theta.unsqueeze(1), A.transpose(1, 2)).squeeze(1))
    g = C * torch.bmm((s * (p - y)).unsqueeze(1), A).squeeze(1) + reg * theta
    base = data_scale(A, s, C) if scale is None else scale
    denom = base + reg * theta.abs()
    return (g.abs() / denom.clamp_min(torch.finfo(A.dtype).tiny)).amax(-1)


def data_scale(A: torch.Tensor, s: torch.Tensor, C: float = 1.0) -> torch.Tensor:
    """``C * sum_i s_i |a_ij|`` per problem and component: [B, n, q] -> [B, q]."""
    return C * torch.bmm(s.unsqueeze(1), A.abs()).squeeze(1)


def converged_one(x: np.ndarray, y: np.ndarray, s: np.ndarray, coef: np.ndarray,
                  intercept: float, C: float = 1.0) -> bool:
    """The test for one fit on plain arrays (features ``x`` [n, k], weights ``s`` [n])."""
    A = np.concatenate([np.ones((x.shape[0], 1)), np.asarray(x, dtype=np.float64)], axis=1)
    theta = np.concatenate([[float(intercept)], np.asarray(coef, dtype=np.float64).ravel()])
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))[None]  # noqa: E731
    r = relative_gradient(t(A), t(np.asarray(y, dtype=np.float64)), t(s), t(theta), C)
    return bool(r[0] <= GRAD_TOL)
