"""The probing core on plain arrays: one unit's (X, y) -> precision/recall/F1 for every k.

Two stages, so that memory stays bounded when a layer has many experts:

1. :func:`prepare` (per unit, right after its activations are read): check the minimum class
   counts, split (75/25, the 25% halved into val/test, see :mod:`.splits`), rank neurons on train
   (:mod:`.selection`) and keep only the ``max(ks)`` best columns.
2. :func:`probe_units` (many units at once): fit an L2 logistic regression on the top-k columns
   for every k with the chosen fitter (batched Newton in torch, or the paper's scikit-learn saga)
   and score it on the held-out rows.

k larger than a unit's width is *skipped*: such rows carry status ``k exceeds width`` and NaN
metrics (the top-``width`` probe is already the row for the largest k that fits).
"""

from __future__ import annotations

from typing import Any, Literal

from moelens.analysis.probing import fit_fast, fit_reference
from moelens.analysis.probing.metrics import prf
from moelens.analysis.probing.prepare import MIN_PER_CLASS, NOT_ENOUGH, OK, Prepared, prepare

__all__ = ["KS", "K_TOO_BIG", "MIN_PER_CLASS", "NOT_ENOUGH", "OK", "SELECTIONS", "Prepared",
           "prepare", "probe_units"]

KS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
"""The paper's k values; every k must be a power of two in [1, 64]."""

K_TOO_BIG = "k exceeds width"
SELECTIONS = ("paper", "val", "test")
"""Where a row's metrics were measured: the whole 25% held-out split (the paper's number), or its
validation half (used only to choose units), or its test half (where chosen units are reported)."""


def probe_units(prepared: list[Prepared], ks: tuple[int, ...] | list[int] = KS,
                fitter: Literal["newton", "saga"] = "newton", device: str = "cpu",
                C: float = 1.0, seed: int = 42) -> list[dict[str, Any]]:
    """Fit every (unit, k) and return one record per (unit, k, selection).

    Records hold the unit's ``meta`` plus ``k, selection, f1, precision, recall, n_pos, n_neg,
    status, fitter, converged``. Counts come back from the fitter as confusion counts on the
    two held-out halves; the paper's number uses their sum.
    """
    ks = tuple(int(k) for k in ks)
    ok = [i for i, p in enumerate(prepared) if p.status == OK]
    if fitter == "newton":
        counts, converged = fit_fast.fit_counts([prepared[i] for i in ok], ks, device=device, C=C)
    elif fitter == "saga":
        counts, converged = fit_reference.fit_counts([prepared[i] for i in ok], ks, C=C, seed=seed)
    else:
        raise ValueError(f"unknown fitter {fitter!r}")
    row_of = {i: r for r, i in enumerate(ok)}
    records: list[dict[str, Any]] = []
    nan = float("nan")
    for i, p in enumerate(prepared):
        for j, k in enumerate(ks):
            base = dict(p.meta, k=k, n_pos=p.n_pos, n_neg=p.n_neg, fitter=fitter)
            if p.status != OK or k > p.width:
                status = p.status if p.status != OK else K_TOO_BIG
                sels = ("paper",) if p.status != OK else SELECTIONS
                for sel in sels:
                    records.append(dict(base, selection=sel, f1=nan, precision=nan, recall=nan,
                                        status=status, converged=None))
                continue
            c = counts[row_of[i], j]  # [2 halves (val, test), 3 (tp, fp, fn)]
            for sel, cc in (("paper", c.sum(0)), ("val", c[0]), ("test", c[1])):
                pr, rc, f1 = prf(cc[0], cc[1], cc[2])
                records.append(dict(base, selection=sel, f1=float(f1), precision=float(pr),
                                    recall=float(rc), status=OK,
                                    converged=bool(converged[row_of[i], j])))
    return records
