"""Coverage and board reconstruction (Karvonen et al. 2024), vectorised and streamed over units.

The definitions are those of the reference (``boardgame.md``); :mod:`.reference` spells them out
with loops and the tests hold the two to 1e-6. How this module gets the same numbers fast:

- Each activation is reduced to its *level*: the index of the highest threshold t·m_f it exceeds
  (−1 for none). Because t·m_f rises with t, "fires at t" is "level ≥ t", so one sparse one-hot
  matrix over (unit, level) per chunk of units, times the float32 labels, gives every threshold's
  true positives at once (a reverse cumulative sum over levels). The product costs the number of
  firing (position, unit) pairs times the cells, not 11 × positions × units × cells; counts are
  exact in float32 (below 2^24). No Python loop runs over units or cells.
- Units arrive in blocks (:class:`BoardScorer`: one expert, one dense space, …) and are processed
  ``chunk_units`` at a time; a block is dropped once counted. What is kept across blocks is the
  best F1 per (threshold, cell) and, for reconstruction, the test activations of the *labelled*
  units only. Memory is one block plus those columns, whatever the width of the unit space.
- Several BSP functions share one pass over the units; masked cells are dropped up front.

Labelling rules. ``paper``: precision ≥ 0.95 and ≥ 10 true positives, as the reference. It has a
flaw: a cell that holds on most positions (castling rights early in a game, a queen still on the
board) is "predicted" with precision ≥ 0.95 by any unit that fires nearly everywhere — at
threshold 0 a GELU neuron or a residual dimension often does — and, for cells with base rates
of 0.7–0.95, by many units that fire on a few dozen positions at random (0.8^10 ≈ 0.1). Such
labels make reconstruction reward guessing common cells. ``corrected`` (the default) also asks
that the precision be *significantly above the cell's base rate* b_g: its Wilson lower bound at
z = 3 (one-sided p ≈ 0.001) must exceed b_g. For rare cells (all cells of the headline function)
the 0.95 bar binds and the two rules agree. Both reconstructions are reported, with the F1 of
the always-on guess (``chance_reconstruction``) beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
from scipy import sparse

from moelens.analysis.boardgame.inputs import (
    EPS, MIN_TRUE_POSITIVES, PRECISION_BAR, THRESHOLDS, WILSON_Z, BSPLabels,
    check_activations,    check_chunk, check_labels,
)
from moelens.analysis.boardgame.reconstruction import (
    N_T, f1_scores, levels, micro_f1, reconstruct,
)
from moelens.errors import ConfigError, DataError

LABELLING = ("corrected", "paper")
"""The two labelling rules (see the module docstring); the first is the default."""


@dataclass(frozen=True)
class BoardScore:
    """Coverage and reconstruction of one unit space for one BSP function."""

    coverage: float
    """Cov(G) = max over thresholds of the mean over counted cells of the best unit's F1."""
    coverage_threshold: float
    """The threshold (fraction of each unit's max) at which coverage peaks (first on ties)."""
    reconstruction: float
    """Best micro-averaged F1 over thresholds of the test board predicted by labelled units
    (the labelling rule of ``labelling``)."""
    reconstruction_threshold: float
    """The threshold of the best reconstruction; 1.0 means the per-unit last slot."""
    reconstruction_paper: float
    """The same with the reference's labelling rule (precision ≥ 0.95, ≥ 10 true positives)."""
    chance_coverage: float
    """Coverage expected of units carrying no information about the board (see chance_coverage)."""
    chance_reconstruction: float
    """Test F1 of guessing every cell with fitting base rate ≥ 0.95 at every position: what the
    paper rule lets an always-on unit reach (0 when no cell is that common)."""
    n_units: int
    """Units scored."""
    n_alive: int
    """Units with m_f = max |a_f| > 0 on the fitting positions."""
    n_labelled: int
    """Units labelled with at least one counted cell at the best reconstruction slot."""
    n_cells: int
    """|G|: the counted cells of the function."""
    labelling: str
    """Labelling rule of ``reconstruction`` and the label counts: corrected or paper."""
    coverage_per_threshold: np.ndarray
    """float64 [11]: mean over counted cells of max over units of F1, per threshold."""
    reconstruction_per_threshold: np.ndarray
    """float64 [11]: test micro F1 per slot (the last slot is the per-unit rule)."""
    labelled_per_threshold: np.ndarray
    """int64 [11]: units labelled with a counted cell, per slot (last: at any threshold)."""
    cell_index: np.ndarray
    """int64 [n_cells]: the counted cells' indices in the flat (row, col, class) layout."""
    cell_f1: np.ndarray
    """float64 [n_cells]: best unit's fitting F1 per counted cell at the coverage threshold."""
    cell_labelled: np.ndarray
    """int64 [n_cells]: units labelled with each counted cell at any threshold."""


def unit_max(a_fit: np.ndarray) -> np.ndarray:
    """m_f = max |a_f| over the fitting positions, float32 [n_units]."""
    return np.abs(a_fit).max(axis=0)


def fit_counts(lev: np.ndarray, y: np.ndarray):
    """True positives [k, 11, C] and firing counts [k, 11] of k units from their levels.

    ``y`` is float32 [n, C]. One sparse product: rows (unit, level), columns positions.
    """
    n, k = lev.shape
    xs, fs = np.nonzero(lev >= 0)
    rows = fs.astype(np.int64) * N_T + lev[xs, fs]
    onehot_t = sparse.csr_matrix((np.ones(len(xs), dtype=np.float32), (rows, xs)),
                                 shape=(k * N_T, n))
    per_level = np.asarray(onehot_t @ y).reshape(k, N_T, -1)
    tp = np.flip(np.cumsum(np.flip(per_level, 1), axis=1), 1)
    fire = np.bincount(rows, minlength=k * N_T).reshape(k, N_T)
    fire = np.flip(np.cumsum(np.flip(fire, 1), axis=1), 1)
    return tp, fire


def chance_coverage(a_fit: np.ndarray, y_fit: np.ndarray) -> float:
    """Coverage of units whose firing is independent of the board, at the units' own firing rates.

    A unit firing on a fraction q of positions, independently of cell g (base rate b), has
    expected precision b and recall q, so F1 = 2qb/(q+b) (with ε as everywhere). That F1 rises with
    q, and q is largest at threshold 0, so for every cell the best such unit is the one with the
    highest threshold-0 firing rate q* = max_f #(a_f > 0)/n. Chance level := mean over counted
    cells of F1(P=b_g, R=q*), b_g on the fitting positions. It is the expectation for one unit;
    the max over many random units sits a little above it (sampling noise).
    """
    return _chance(float((a_fit > 0).mean(axis=0).max()), y_fit)


def _chance(q_star: float, y_fit: np.ndarray) -> float:
    b = y_fit.mean(axis=0, dtype=np.float64)
    f1 = 2.0 * b * q_star / (b + q_star + EPS)
    return float(f1.mean())


def wilson_lower(tp: np.ndarray, n: np.ndarray, z: float = WILSON_Z) -> np.ndarray:
    """Wilson score lower bound of a proportion tp/n (float64; 0 where n = 0)."""
    tp = np.asarray(tp, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    safe = np.maximum(n, 1.0)
    p = tp / safe
    z2 = z * z
    centre = p + z2 / (2.0 * safe)
    spread = z * np.sqrt(p * (1.0 - p) / safe + z2 / (4.0 * safe * safe))
    return np.where(n > 0, (centre - spread) / (1.0 + z2 / safe), 0.0)


def _always_on_f1(y_fit: np.ndarray, y_test: np.ndarray) -> float:
    common = y_fit.mean(axis=0) >= PRECISION_BAR
    pred = np.zeros_like(y_test)
    pred[:, common] = True
    return micro_f1(pred, y_test)


class BoardScorer:
    """Scores one unit space against several BSP functions, its units given block by block.

    ``add(a_fit, a_test)`` takes the next block of units ([positions, units] on the fitting and
    test positions; every block has the same positions); ``result()`` gives one
    :class:`BoardScore` per function. Scores do not depend on how the units are split into blocks.
    """

    def __init__(self, functions: Mapping[str, BSPLabels], chunk_units: int = 256,
                 labelling: str = "corrected"):
        if not functions:
            raise ConfigError("no BSP function to score; pass at least one")
        if labelling not in LABELLING:
            raise ConfigError(f"labelling must be one of {', '.join(LABELLING)}, got {labelling!r}")
        self.functions, self.labelling = dict(functions), labelling
        self.chunk = check_chunk(chunk_units)
        self.n_units = self.n_alive = 0
        self.q_star = 0.0
        self._ready = False
        self._kept: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def _prepare(self, n_fit: int, n_test: int) -> None:
        fits, tests, self.spans, start = [], [], {}, 0
        for name, labels in self.functions.items():
            y_fit, y_test, mask = check_labels(labels, n_fit, n_test, name)
            fits.append(y_fit[:, mask])
            tests.append(y_test[:, mask])
            self.spans[name] = (start, start + int(mask.sum()), np.flatnonzero(mask))
            start += int(mask.sum())
        self.y_fit, self.y_test = fits, tests
        y_all = np.concatenate(fits, axis=1)
        self.y_fit_f32 = y_all.astype(np.float32)
        self.n_pos = y_all.sum(axis=0)
        self.base = self.n_pos / n_fit  # corrected rule: precision significantly above this
        self.best_f1 = np.zeros((N_T, start))
        self.n_fit, self.n_test, self._ready = n_fit, n_test, True

    def add(self, a_fit, a_test) -> None:
        """Count the next block of units (see the class docstring)."""
        a_fit, a_test = check_activations(a_fit, a_test)
        if not self._ready:
            self._prepare(a_fit.shape[0], a_test.shape[0])
        elif a_fit.shape[0] != self.n_fit or a_test.shape[0] != self.n_test:
            raise DataError(f"a block of units covers {a_fit.shape[0]} / {a_test.shape[0]} "
                            f"positions, earlier blocks {self.n_fit} / {self.n_test}; every block "
                            "must cover the same positions")
        m = unit_max(a_fit)
        self.n_units += a_fit.shape[1]
        self.n_alive += int(np.count_nonzero(m > 0))
        self.q_star = max(self.q_star, float((a_fit > 0).mean(axis=0).max()))
        for s in range(0, a_fit.shape[1], self.chunk):
            tp, fire = fit_counts(levels(a_fit[:, s:s + self.chunk], m[s:s + self.chunk]),
                                  self.y_fit_f32)
            paper = np.zeros(tp.shape, dtype=bool)
            corrected = np.zeros(tp.shape, dtype=bool)
            for i in range(N_T):  # one threshold at a time keeps the float64 temporaries small
                p, _, f1 = f1_scores(tp[:, i, :], fire[:, i, None], self.n_pos[None, :])
                np.maximum(self.best_f1[i], f1.max(axis=0), out=self.best_f1[i])
                enough = tp[:, i, :] >= MIN_TRUE_POSITIVES
                paper[:, i, :] = (p >= PRECISION_BAR) & enough
                lift = wilson_lower(tp[:, i, :], fire[:, i, None]) > self.base[None, :]
                corrected[:, i, :] = paper[:, i, :] & lift
            keep = np.flatnonzero(paper.any(axis=(1, 2)))
            if keep.size:
                cols = s + keep
                self._kept.append((a_test[:, cols].copy(), m[cols], paper[keep], corrected[keep]))

    def result(self) -> dict[str, BoardScore]:
        """The scores of every function over all units added so far."""
        if not self._ready:
            raise DataError("no units were scored; the unit space is empty")
        n_cells = self.best_f1.shape[1]
        if self._kept:
            a_test = np.concatenate([k[0] for k in self._kept], axis=1)
            m = np.concatenate([k[1] for k in self._kept])
            lab = {"paper": np.concatenate([k[2] for k in self._kept]),
                   "corrected": np.concatenate([k[3] for k in self._kept])}
        else:
            a_test, m = np.zeros((self.n_test, 0), np.float32), np.zeros(0, np.float32)
            lab = {r: np.zeros((0, N_T, n_cells), bool) for r in LABELLING}
        out = {}
        for (name, (c0, c1, cells)), y_fit, y_test in zip(self.spans.items(), self.y_fit,
                                                          self.y_test):
            cov_t = self.best_f1[:, c0:c1].mean(axis=1)
            recs = {}
            for rule in LABELLING:
                mine = lab[rule][:, :, c0:c1]
                on = mine.any(axis=(1, 2))
                recs[rule] = reconstruct(a_test[:, on], m[on], mine[on], y_test, self.chunk)
                recs[rule] += (mine[on].any(axis=1).sum(axis=0),)
            rec_t, n_lab, per_cell = recs[self.labelling]
            i_cov, i_rec = int(np.argmax(cov_t)), int(np.argmax(rec_t))
            out[name] = BoardScore(
                coverage=float(cov_t[i_cov]), coverage_threshold=float(THRESHOLDS[i_cov]),
                reconstruction=float(rec_t[i_rec]),
                reconstruction_threshold=float(THRESHOLDS[i_rec]),
                reconstruction_paper=float(recs["paper"][0].max()),
                chance_coverage=_chance(self.q_star, y_fit),
                chance_reconstruction=_always_on_f1(y_fit, y_test),
                n_units=self.n_units, n_alive=self.n_alive, n_labelled=int(n_lab[i_rec]),
                n_cells=c1 - c0, labelling=self.labelling, coverage_per_threshold=cov_t,
                reconstruction_per_threshold=rec_t, labelled_per_threshold=n_lab,
                cell_index=cells.astype(np.int64), cell_f1=self.best_f1[i_cov, c0:c1].copy(),
                cell_labelled=per_cell.astype(np.int64))
        return out


def score_blocks(blocks: Iterable[tuple[np.ndarray, np.ndarray]],
                 functions: Mapping[str, BSPLabels], chunk_units: int = 256,
                 labelling: str = "corrected") -> dict[str, BoardScore]:
    """Score a unit space given as blocks of units ``(a_fit, a_test)`` (:class:`BoardScorer`)."""
    scorer = BoardScorer(functions, chunk_units, labelling)
    for a_fit, a_test in blocks:
        scorer.add(a_fit, a_test)
    return scorer.result()


def score_functions(a_fit, a_test, functions: Mapping[str, BSPLabels], chunk_units: int = 256,
                    labelling: str = "corrected") -> dict[str, BoardScore]:
    """Score one unit space, all its units in two arrays, against several BSP functions."""
    return score_blocks([(a_fit, a_test)], functions, chunk_units, labelling)


def score_function(a_fit, a_test, labels: BSPLabels, chunk_units: int = 256,
                   labelling: str = "corrected") -> BoardScore:
    """Score one unit space against one BSP function (see :func:`score_functions`)."""
    return score_functions(a_fit, a_test, {"function": labels}, chunk_units,
                           labelling)["function"]
