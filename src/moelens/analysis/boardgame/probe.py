"""A linear probe of the board on the residual stream: has a model learned the board at all?

At each scored position the residual stream (d numbers) is mapped by one linear layer to 64 × 13
logits, one softmax per square over the 13 ``piece`` classes (white P N B R Q K, black p n b r q
k, empty), trained by the cross-entropy summed over squares on the fitting positions; accuracy
is the argmax agreement averaged over squares and test positions (Li et al. 2023; Karvonen 2024,
~99% on a well-trained 8-layer chess model).

Two numbers make it readable: the *majority baseline* (each square's most common class on the
fitting positions: high, since most squares are empty or still hold their starting piece) and
the probe's accuracy on the squares whose piece *changed* from the starting position, where
that baseline is nearly always wrong. The control that shows how much comes from learning rather
than from the probe is the same model at its untrained, random weights (a random-weight residual
still carries the tokens seen so far, which a linear probe partly decodes); the reference's
control, a model trained on random-move games, also has to track the board and is reported
beside it (``moelens experiment chess``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moelens.errors import DataError

N_SQUARES, N_CLASSES = 64, 13


@dataclass(frozen=True)
class ProbeResult:
    """Test accuracy of a linear board probe."""

    accuracy: float
    """Argmax agreement over test positions × 64 squares."""
    accuracy_changed: float
    """The same over the (position, square) pairs whose piece differs from the start position."""
    majority_accuracy: float
    """Accuracy of predicting each square's most common fitting class (no activations)."""
    majority_accuracy_changed: float
    """The majority baseline on the changed squares."""
    test_loss: float
    """Mean cross-entropy per square on the test positions (nats)."""
    n_fit: int
    """Fitting positions."""
    n_test: int
    """Test positions."""


def piece_classes(piece_onehot: np.ndarray) -> np.ndarray:
    """int64 [n, 64]: class index per square from the flat ``piece`` labels [n, 64·13]."""
    y = np.asarray(piece_onehot, dtype=bool).reshape(-1, N_SQUARES, N_CLASSES)
    if not (y.sum(axis=2) == 1).all():
        raise DataError("piece labels must hold exactly one class per square")
    return y.argmax(axis=2).astype(np.int64)


def start_classes() -> np.ndarray:
    """int64 [64]: the class of every square in the starting position."""
    import chess

    from moelens.data.chess.bsp import piece

    return piece(chess.Board()).reshape(N_SQUARES, N_CLASSES).argmax(axis=1).astype(np.int64)


def fit_board_probe(x_fit: np.ndarray, y_fit: np.ndarray, x_test: np.ndarray,
                    y_test: np.ndarray, seed: int = 0, steps: int = 300, lr: float = 0.05,
                    weight_decay: float = 1e-4) -> ProbeResult:
    """Fit the probe on (x_fit [n, d], y_fit int [n, 64]) and score it on the test positions.

    Inputs are standardised with the fitting mean and sd; full-batch Adam for ``steps`` steps
    with a small L2 penalty (deterministic given ``seed``, which sets the initialisation). The
    default of 300 steps is where the test loss stops falling on ~5,000 positions of a 128-d
    residual; an unconverged probe flattens the differences between models it should show.
    """
    import torch

    if x_fit.shape[0] == 0 or x_test.shape[0] == 0:
        raise DataError("the board probe needs fitting and test positions; score more games")
    mean = x_fit.mean(axis=0, dtype=np.float64).astype(np.float32)
    sd = x_fit.std(axis=0, dtype=np.float64).astype(np.float32) + 1e-6
    xf = torch.from_numpy(((x_fit - mean) / sd).astype(np.float32))
    xt = torch.from_numpy(((x_test - mean) / sd).astype(np.float32))
    yf, yt = torch.from_numpy(y_fit.reshape(-1)), torch.from_numpy(y_test.reshape(-1))
    gen = torch.Generator().manual_seed(seed)
    d = xf.shape[1]
    w = (torch.randn(d, N_SQUARES * N_CLASSES, generator=gen) * 0.01).requires_grad_()
    b = torch.zeros(N_SQUARES * N_CLASSES, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        logits = (xf @ w + b).reshape(-1, N_CLASSES)
        loss = torch.nn.functional.cross_entropy(logits, yf) + weight_decay * (w * w).sum()
        loss.backward()
        opt.step()
    with torch.no_grad():
        logits = (xt @ w + b).reshape(-1, N_CLASSES)
        test_loss = float(torch.nn.functional.cross_entropy(logits, yt))
        pred = logits.argmax(dim=1).numpy().reshape(-1, N_SQUARES)
    majority = np.array([np.bincount(y_fit[:, s], minlength=N_CLASSES).argmax()
                         for s in range(N_SQUARES)])
    changed = y_test != start_classes()[None, :]
    hit, base_hit = pred == y_test, majority[None, :] == y_test
    return ProbeResult(
        accuracy=float(hit.mean()), accuracy_changed=_mean(hit, changed),
        majority_accuracy=float(base_hit.mean()),
        majority_accuracy_changed=_mean(base_hit, changed), test_loss=test_loss,
        n_fit=int(x_fit.shape[0]), n_test=int(x_test.shape[0]))


def _mean(values: np.ndarray, where: np.ndarray) -> float:
    return float(values[where].mean()) if where.any() else float("nan")
