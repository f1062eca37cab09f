"""Seeded stratified splits of one unit's labelled tokens.

The paper splits every unit's dataset 75/25 (stratified, seed 42) and reports F1 on the 25%.
For the validation control we split that 25% again, stratified, into two halves: ``val`` (used
only to *choose* a layer/unit) and ``test`` (where the chosen unit's F1 is reported). The model
is fitted once, on the 75%, so the paper's own number and the controlled number come from the
same fit; see :mod:`.controls` for why this nested split is enough.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    """Row indices into one unit's dataset."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @property
    def held_out(self) -> np.ndarray:
        """The paper's test split: the union of the two halves."""
        return np.concatenate([self.val, self.test])


def stratified_split(y: np.ndarray, seed: int, test_frac: float = 0.25) -> Split:
    """Per class, shuffle with ``seed``; ``ceil(test_frac * n_c)`` rows go to the held-out part,
    which is halved (stratified) into ``val`` and ``test``; the rest is ``train``."""
    y = np.asarray(y, dtype=bool)
    rng = np.random.default_rng(seed)
    train, val, test = [], [], []
    for cls in (False, True):
        idx = np.flatnonzero(y == cls)
        idx = idx[rng.permutation(idx.size)]
        n_out = int(np.ceil(test_frac * idx.size))
        out, rest = idx[:n_out], idx[n_out:]
        half = (out.size + 1) // 2
        val.append(out[:half])
        test.append(out[half:])
        train.append(rest)
    return Split(*(np.sort(np.concatenate(p)) for p in (train, val, test)))
