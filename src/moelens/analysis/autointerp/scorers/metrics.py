"""Classification metrics with failures kept apart, intervals, and the per-decile breakdown.

``None`` predictions are failures: they are counted and left out of every metric, never turned
into a 0 or a 1. Intervals: Wilson 95% for a proportion, percentile bootstrap for a mean over
units.
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    if n == 0:
        return None, None
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def auroc(labels, scores) -> float | None:
    """Area under the ROC curve (Mann-Whitney, ties counted half); None without both classes."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=float)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=float)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def pearson(x, y) -> float | None:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 2 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def _r(v):
    return None if v is None else round(float(v), 6)


def classification(labels: list[int], predictions: list[int | None],
                   probabilities: list[float | None] | None = None) -> dict:
    """Balanced accuracy, accuracy, precision, recall, F1 (and AUROC with probabilities) over the
    answered items, plus the all-yes baselines on the same items."""
    y = np.array([l for l, p in zip(labels, predictions) if p is not None], dtype=int)
    p = np.array([p for p in predictions if p is not None], dtype=int)
    out: dict = {"n": len(labels), "answered": int(y.size), "failures": len(labels) - int(y.size)}
    if y.size == 0:
        return {**out, **{k: None for k in ("balanced_accuracy", "accuracy", "precision", "recall", "f1",
                                             "auroc", "f1_all_yes", "accuracy_all_yes")}}
    tp = int(((p == 1) & (y == 1)).sum())
    fp = int(((p == 1) & (y == 0)).sum())
    tn = int(((p == 0) & (y == 0)).sum())
    fn = int(((p == 0) & (y == 1)).sum())
    pos, neg = tp + fn, tn + fp
    recall = tp / pos if pos else None
    spec = tn / neg if neg else None
    precision = tp / (tp + fp) if tp + fp else None
    f1 = 2 * tp / (2 * tp + fp + fn) if pos else None
    bal = 0.5 * (recall + spec) if recall is not None and spec is not None else None
    au = None
    if probabilities is not None:
        pr = [q for q, pp in zip(probabilities, predictions) if pp is not None]
        if all(q is not None for q in pr):
            au = auroc(y, pr)
    return {**out, "tp": tp, "fp": fp, "tn": tn, "fn": fn, "balanced_accuracy": _r(bal),
            "accuracy": _r((tp + tn) / y.size), "precision": _r(precision), "recall": _r(recall),
            "specificity": _r(spec), "f1": _r(f1), "auroc": _r(au),
            "f1_all_yes": _r(2 * pos / (2 * pos + neg) if pos else None),
            "accuracy_all_yes": _r(pos / y.size)}


def by_decile(records: list[dict]) -> list[dict]:
    """Per decile of the activating windows: share judged activating (recall), with a Wilson
    interval; and for the non-activating windows the share judged not activating."""
    rows = []
    for d in range(1, 11):
        sel = [r for r in records if r["label"] == 1 and r.get("decile") == d and r["prediction"] is not None]
        k = sum(r["prediction"] for r in sel)
        lo, hi = wilson(k, len(sel))
        rows.append({"group": f"decile {d}", "decile": d, "n": len(sel), "correct": k,
                     "rate": _r(k / len(sel)) if sel else None, "ci_low": _r(lo), "ci_high": _r(hi)})
    sel = [r for r in records if r["label"] == 0 and r["prediction"] is not None]
    k = sum(1 - r["prediction"] for r in sel)
    lo, hi = wilson(k, len(sel))
    rows.append({"group": "non-activating", "decile": 0, "n": len(sel), "correct": k,
                 "rate": _r(k / len(sel)) if sel else None, "ci_low": _r(lo), "ci_high": _r(hi)})
    return rows


def bootstrap_mean(values, n_boot: int = 1000, seed: int = 0) -> tuple[float | None, float | None, float | None]:
    """(mean, 2.5th percentile, 97.5th percentile) of the mean over resampled values."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return None, None, None
    if v.size == 1 or n_boot <= 0:
        return float(v.mean()), None, None
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    return float(v.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))
