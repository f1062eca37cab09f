"""Fast path: every (unit, k) logistic regression at once, by batched Newton's method in torch.

The objective is exactly scikit-learn's for ``LogisticRegression(C, class_weight="balanced")``
with the L2 penalty::

    f(w, b) = 0.5 * ||w||^2 + C * sum_i s_i * logloss(y_i, x_i . w + b),   s_i = n / (2 n_class(i))

(intercept unpenalised, raw features: no standardisation, which would change the optimum). With
at most 64 features + intercept per problem, Newton's method is cheap: the Hessian
``C A^T diag(s p (1-p)) A + diag(1,...,1,0)`` is tiny and solved for all problems with one batched
Cholesky. A backtracking (Armijo) line search makes it globally convergent; it stops when the
relative gradient test of :mod:`.optimality` passes (the same test that flags the reference
fitter's fits), or when the Newton decrement is at float64 round-off. It reaches the optimum that
saga only approaches (on small unscaled activations saga stops by its own tolerance far from
it, see :mod:`.fit_reference`), in float64, typically in 5-15 iterations. Problems of one k are stacked into a batch, rows padded
with zero sample weight; a batch runs on ``device`` (CPU or CUDA).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch

from moelens.analysis.probing.optimality import GRAD_TOL, data_scale, relative_gradient
from moelens.analysis.probing.prepare import Prepared, balanced_weights

_BATCH_BYTES = 512 * 2**20
"""Upper bound on one batch's float64 design tensor on a GPU, so memory stays bounded."""

_CPU_BATCH_BYTES = 6 * 2**20
"""On a CPU the solver is memory-bound: batches of a few MiB stay in cache and run faster."""


def _matvec(A: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``A @ x`` per problem: [B, n, q] x [B, q] -> [B, n].

    Written as row vector times ``A^T`` because MKL's batched matrix-vector path for
    ``bmm(A, x[..., None])`` is 4-5x slower on CPU at these shapes (measured: 700 vs 175 us for
    10 x 1200 x 65 in float64); on a GPU both forms are the same.
    """
    return torch.bmm(x.unsqueeze(1), A.transpose(1, 2)).squeeze(1)


def _rmatvec(A: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``A^T @ r`` per problem: [B, n, q] x [B, n] -> [B, q] (row-vector form, see :func:`_matvec`)."""
    return torch.bmm(r.unsqueeze(1), A).squeeze(1)


def newton_logreg(A: torch.Tensor, y: torch.Tensor, s: torch.Tensor, C: float = 1.0,
                  theta0: torch.Tensor | None = None, max_iter: int = 100,
                  tol: float = GRAD_TOL) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise the objective above for a batch.

    ``A`` [B, n, 1+p] has a first column of ones (1 on real rows) and then the features, ``y`` [B, n] in {0, 1},
    ``s`` [B, n] sample weights (0 on padding rows), ``theta0`` an optional start (e.g. the k/2
    solution padded with zeros: the top-k features extend the top-k/2 ones). Returns ``theta``
    [B, 1+p] (intercept, then weights) and a bool [B]: converged, i.e. the relative gradient
    of :func:`moelens.analysis.probing.optimality.relative_gradient` is at most ``tol`` at the
    returned solution. Iteration stops at that test, or when the Newton decrement is at
    float64 round-off of the objective (no further progress possible). The Hessian is formed
    in float32 (it only steers the step; gradient, objective and line search are float64, so
    the optimum reached is the float64 one). The line
    search reuses ``A d`` so each iteration costs three batched products. Finished problems are
    dropped from the working set once they are a quarter of it.
    """
    B, _, q = A.shape
    reg = torch.ones(q, dtype=A.dtype, device=A.device)
    reg[0] = 0.0
    ridge = torch.diag(reg) + torch.eye(q, dtype=A.dtype, device=A.device) * 1e-12
    theta = torch.zeros(B, q, dtype=A.dtype, device=A.device) if theta0 is None else theta0.clone()
    done = torch.zeros(B, dtype=torch.bool, device=A.device)
    ids = torch.arange(B, device=A.device)  # working set -> batch index
    Aw, Aw32, yw, sw = A, A.float(), y, s
    scale = data_scale(A, s, C)
    eta = _matvec(Aw, theta)

    def objective(eta: torch.Tensor, th: torch.Tensor) -> torch.Tensor:
        data = (sw * (torch.nn.functional.softplus(eta) - yw * eta)).sum(-1)
        return C * data + 0.5 * (th[:, 1:] ** 2).sum(-1)

    f = objective(eta, theta)
    for _ in range(max_iter):
        live = ~done[ids]
        if not bool(live.any()):
            break
        if int(live.sum()) * 4 < 3 * ids.numel():  # compact the working set
            keep = torch.nonzero(live).squeeze(-1)
            ids, Aw, Aw32, yw, sw = ids[keep], Aw[keep], Aw32[keep], yw[keep], sw[keep]
            scale = scale[keep]
            eta, f, live = eta[keep], f[keep], live[keep]
        th = theta[ids]
        p = torch.sigmoid(eta)
        g = C * _rmatvec(Aw, sw * (p - yw)) + reg * th
        h = (C * sw * p * (1.0 - p)).float()
        H = torch.bmm(Aw32.transpose(1, 2), Aw32 * h.unsqueeze(-1)).double() + ridge
        L, info = torch.linalg.cholesky_ex(H)
        d = torch.cholesky_solve(-g.unsqueeze(-1), L).squeeze(-1)
        bad = info != 0
        if bool(bad.any()):  # numerically indefinite: a gradient step for those problems
            d = torch.where(bad.unsqueeze(-1), -g, d)
        gd = (g * d).sum(-1)
        # the test of optimality.relative_gradient, on the gradient already at hand
        small = (g.abs() / (scale + reg * th.abs()).clamp_min(torch.finfo(A.dtype).tiny)).amax(-1) <= tol
        stalled = (-gd / 2 <= 1e-15 * (1.0 + f.abs())) & ~bad
        finished = small | stalled | ~live
        Ad = _matvec(Aw, d)
        t = torch.ones_like(f)
        for _ls in range(60):
            fc = objective(eta + t.unsqueeze(-1) * Ad, th + t.unsqueeze(-1) * d)
            accept = (fc <= f + 1e-4 * t * gd) | finished
            if bool(accept.all()):
                break
            t = torch.where(accept, t, t * 0.5)
        step = (fc <= f) & ~finished
        ts = torch.where(step, t, torch.zeros_like(t)).unsqueeze(-1)
        theta[ids] = th + ts * d
        eta = eta + ts * Ad
        f = torch.where(step, fc, f)
        done[ids] = done[ids] | finished | ~step
    return theta, relative_gradient(A, y, s, theta, C) <= tol


def _pad(arrays: list[np.ndarray], dtype) -> np.ndarray:
    """Stack arrays of different lengths along a new first axis, zero-padded."""
    n = max(a.shape[0] for a in arrays)
    out = np.zeros((len(arrays), n) + arrays[0].shape[1:], dtype=dtype)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = a
    return out


def fit_counts(prepared: list[Prepared], ks: tuple[int, ...], device: str = "cpu",
               C: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Confusion counts [P, K, 2 (val, test), 3 (tp, fp, fn)] and converged [P, K] for every
    prepared unit and k (k larger than the unit's width: zeros, the caller skips them).

    Units are sorted by size and cut into batches (small on CPU, so that a batch stays in cache:
    the solver is memory-bound there; large on a GPU); within a batch the ks are fitted in
    increasing order, each starting from the previous k's solution."""
    P = len(prepared)
    counts = np.zeros((P, len(ks), 2, 3), dtype=np.int64)
    converged = np.zeros((P, len(ks)), dtype=bool)
    if P == 0:
        return counts, converged
    dev = torch.device(device)
    budget = _BATCH_BYTES if dev.type != "cpu" else _CPU_BATCH_BYTES
    order = sorted(range(P), key=lambda i: prepared[i].train_y.size, reverse=True)
    kmax = max(ks)
    start = 0
    with _single_thread(dev):
        while start < P:
            n_max = prepared[order[start]].train_y.size
            per = max(1, budget // (8 * (kmax + 1) * max(n_max, 1)))
            chunk = order[start: start + per]
            start += len(chunk)
            res, ok = _fit_chunk([prepared[i] for i in chunk], ks, dev, C)
            counts[chunk], converged[chunk] = res, ok
    return counts, converged


@contextlib.contextmanager
def _single_thread(dev: torch.device) -> Iterator[None]:
    """On CPU, run the solver on one intra-op thread and restore the setting afterwards.

    The batched products are small (cache-sized batches of <= 65 x 65 systems); splitting them
    over threads costs more in synchronisation than it gains, badly so on a busy machine
    (measured 10-30x slower with 2 threads under load)."""
    if dev.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _design(xs: list[np.ndarray], dev: torch.device) -> torch.Tensor:
    """[B, n, 1+w] float64: a ones column on real rows (0 on padding), then the features."""
    n = max(x.shape[0] for x in xs)
    w = max(x.shape[1] for x in xs)
    out = np.zeros((len(xs), n, 1 + w), dtype=np.float64)
    for i, x in enumerate(xs):
        out[i, : x.shape[0], 0] = 1.0
        out[i, : x.shape[0], 1: 1 + x.shape[1]] = x
    return torch.from_numpy(out).to(dev)


def _fit_chunk(chunk: list[Prepared], ks: tuple[int, ...], dev: torch.device,
               C: float) -> tuple[np.ndarray, np.ndarray]:
    """Fit one batch of units at every k; return held-out counts and convergence flags."""
    dt = torch.float64
    B = len(chunk)
    A_all = _design([p.train_x for p in chunk], dev)
    H_all = _design([p.held_x for p in chunk], dev)
    y = torch.from_numpy(_pad([p.train_y.astype(np.float64) for p in chunk], np.float64)).to(dev)
    s = torch.from_numpy(_pad([balanced_weights(p.train_y) for p in chunk], np.float64)).to(dev)
    width = np.array([p.train_x.shape[1] for p in chunk])
    counts = np.zeros((B, len(ks), 2, 3), dtype=np.int64)
    conv = np.zeros((B, len(ks)), dtype=bool)
    theta_prev = torch.zeros(B, 1, dtype=dt, device=dev)  # k = 0: intercept only
    for j in sorted(range(len(ks)), key=lambda j: ks[j]):
        k = ks[j]
        rows = np.flatnonzero(width >= k)
        if rows.size == 0:
            continue
        everyone = rows.size == B
        sel = torch.from_numpy(rows).to(dev)
        A = A_all[:, :, : k + 1] if everyone else A_all[sel, :, : k + 1]
        theta0 = torch.zeros(rows.size, k + 1, dtype=dt, device=dev)
        m = min(theta_prev.shape[1], k + 1)
        theta0[:, :m] = theta_prev[sel, :m]
        theta, done = newton_logreg(A.contiguous(), y[sel], s[sel], C=C, theta0=theta0)
        Hk = H_all[:, :, : k + 1] if everyone else H_all[sel, :, : k + 1]
        pred = (_matvec(Hk, theta) > 0).cpu().numpy()
        for b, r in enumerate(rows):
            p = chunk[r]
            pr, yy, isv = pred[b, : p.held_y.size], p.held_y, p.held_is_val
            for h, mk in enumerate((isv, ~isv)):
                counts[r, j, h] = ((pr & yy & mk).sum(), (pr & ~yy & mk).sum(), (~pr & yy & mk).sum())
        conv[rows, j] = done.cpu().numpy()
        full = torch.zeros(B, k + 1, dtype=dt, device=dev)
        full[sel] = theta
        theta_prev = full
    return counts, conv
