"""The plain-array inputs of the board-game metrics, their constants, and their validation.

Activations are ``[positions, units]`` float32 for any unit space: dense MLP neurons, SAE latents,
residual dimensions, or routed expert neurons. For expert neurons the value is 0 at every position
where the expert was not routed (zero-filled, i.e. gated semantics): such a unit never fires there,
which is what "the unit is on" means for a routed expert.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moelens.errors import ConfigError, DataError

THRESHOLDS = np.round(np.arange(11, dtype=np.float64) / 10.0, 1).astype(np.float32)
"""The 11 thresholds t in {0.0, 0.1, ..., 1.0}, relative to each unit's max |activation|."""

EPS = 1e-8
"""The ε added to every denominator of precision, recall and F1 (reference definition)."""

PRECISION_BAR = 0.95
"""A unit is labelled with a cell at a threshold when its fitting precision reaches this."""

MIN_TRUE_POSITIVES = 10
"""... and it has at least this many true positives on the fitting positions."""

WILSON_Z = 3.0
"""Corrected labelling rule: the Wilson lower bound of the precision at this z (one-sided
p ≈ 0.001) must also exceed the cell's base rate, so that a label is never earned by the base
rate alone (see :mod:`.metrics`)."""


@dataclass(frozen=True)
class BSPLabels:
    """The labels of one board-state-property function on the fitting and test positions."""

    y_fit: np.ndarray
    """bool [n_fit, n_cells]: cell g holds at fitting position x (one-hot board, flattened)."""
    y_test: np.ndarray
    """bool [n_test, n_cells]: the same cells on the test positions."""
    cell_mask: np.ndarray
    """bool [n_cells]: cells that count; masked cells are left out of |G| and of reconstruction."""


def check_activations(a_fit, a_test) -> tuple[np.ndarray, np.ndarray]:
    """Return both activation matrices as float32 C arrays, or raise DataError on bad shapes."""
    a_fit = np.asarray(a_fit)
    a_test = np.asarray(a_test)
    for name, a in (("fitting", a_fit), ("test", a_test)):
        if a.ndim != 2:
            raise DataError(f"{name} activations must be 2-D [positions, units], got shape "
                            f"{a.shape}; reshape them before scoring")
        if a.shape[0] == 0:
            raise DataError(f"{name} activations have no positions; score at least one game")
        if a.shape[1] == 0:
            raise DataError(f"{name} activations have no units; pick a non-empty unit space")
        if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise DataError(f"{name} activations must be real numbers, got dtype {a.dtype}")
    if a_fit.shape[1] != a_test.shape[1]:
        raise DataError(f"fitting activations have {a_fit.shape[1]} units but test activations "
                        f"have {a_test.shape[1]}; score the same unit space on both splits")
    a_fit = np.ascontiguousarray(a_fit, dtype=np.float32)
    a_test = np.ascontiguousarray(a_test, dtype=np.float32)
    for name, a in (("fitting", a_fit), ("test", a_test)):
        if not np.isfinite(a).all():
            raise DataError(f"{name} activations contain NaN or infinite values; "
                            "recapture the store or drop those positions")
    return a_fit, a_test


def _as_bool(y, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype == bool:
        return y
    if not np.issubdtype(y.dtype, np.number) or not np.isin(y, (0, 1)).all():
        raise DataError(f"{what} must be boolean (or 0/1), got dtype {y.dtype}")
    return y.astype(bool)


def check_labels(labels: BSPLabels, n_fit: int, n_test: int, name: str = "function"
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (y_fit, y_test, mask) as bool arrays, or raise DataError/ConfigError on bad ones."""
    y_fit = _as_bool(labels.y_fit, f"{name}: fitting labels")
    y_test = _as_bool(labels.y_test, f"{name}: test labels")
    mask = _as_bool(labels.cell_mask, f"{name}: cell mask")
    if y_fit.ndim != 2 or y_test.ndim != 2 or mask.ndim != 1:
        raise DataError(f"{name}: labels must be [positions, cells] and the mask [cells], got "
                        f"{y_fit.shape}, {y_test.shape} and {mask.shape}")
    if y_fit.shape[0] != n_fit or y_test.shape[0] != n_test:
        raise DataError(f"{name}: labels cover {y_fit.shape[0]} fitting / {y_test.shape[0]} test "
                        f"positions but activations cover {n_fit} / {n_test}; "
                        "compute both from the same positions")
    if not (y_fit.shape[1] == y_test.shape[1] == mask.shape[0]):
        raise DataError(f"{name}: fitting labels have {y_fit.shape[1]} cells, test labels "
                        f"{y_test.shape[1]}, the mask {mask.shape[0]}; they must agree")
    if not mask.any():
        raise ConfigError(f"{name}: the cell mask excludes every cell; count at least one cell")
    return y_fit, y_test, mask


def check_chunk(chunk_units: int) -> int:
    """Return a valid unit chunk size or raise ConfigError."""
    if isinstance(chunk_units, bool) or not isinstance(chunk_units, (int, np.integer)) \
            or chunk_units < 1:
        raise ConfigError(f"chunk_units must be a positive integer, got {chunk_units!r}")
    return int(chunk_units)
