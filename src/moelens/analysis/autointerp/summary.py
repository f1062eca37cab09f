"""The run's summary: per scorer and metric, the mean over units with a 95% bootstrap interval and
the baseline beside it (answering "yes" everywhere, or chance), plus the per-decile breakdown
pooled over units (MoE-X Fig. 8) and its figure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from moelens.analysis.autointerp.scorers import metrics
from moelens.plotting import pyplot, save_figures
from moelens.rundir import atomic_write_text

REPORTED: dict[str, list[tuple[str, object]]] = {
    "detection": [("balanced_accuracy", 0.5), ("f1", "f1_all_yes"), ("auroc", 0.5)],
    "fuzzing": [("balanced_accuracy", 0.5), ("f1", "f1_all_yes")],
    "binary": [("f1", "f1_all_yes"), ("accuracy", "accuracy_all_yes"), ("balanced_accuracy", 0.5)],
    "intruder": [("accuracy", "chance")],
    "embedding": [("auroc", 0.5), ("balanced_accuracy", 0.5)],
    "simulation": [("pearson", 0.0)],
    "rules": [("token_f1", None), ("balanced_accuracy", 0.5)],
}
"""scorer -> (metric, baseline: a constant, or the per-unit metric holding it)."""
DECILE_SCORERS = ("detection", "fuzzing", "embedding", "rules")


def _r(v):
    return None if v is None else round(float(v), 6)


def build(records: list[dict], scorers: list[str], n_boot: int, seed: int) -> dict:
    """Summary of finished unit records (see :mod:`.run` for their layout)."""
    status: dict[str, int] = {}
    for r in records:
        status[r["status"]] = status.get(r["status"], 0) + 1
    scored = [r for r in records if r["status"] == "ok"]
    table = []
    for name in scorers:
        per_unit = [r["scores"].get(name) for r in scored]
        for metric, base in REPORTED[name]:
            values = [(s or {}).get("metrics", {}).get(metric) for s in per_unit]
            mean, lo, hi = metrics.bootstrap_mean(values, n_boot, seed)
            if isinstance(base, str):
                bvals = [(s or {}).get("metrics", {}).get(base) for s in per_unit]
                bvals = [b for b, v in zip(bvals, values) if v is not None and b is not None]
                baseline = float(np.mean(bvals)) if bvals else None
                kind = "chance" if base == "chance" else "all-yes"
            else:
                baseline, kind = base, ("all-yes" if metric in ("balanced_accuracy",) else "chance")
            failures = sum(((s or {}).get("metrics") or {}).get("failures", 0) or 0 for s in per_unit)
            table.append({"scorer": name, "metric": metric, "units": sum(v is not None for v in values),
                          "mean": _r(mean), "ci_low": _r(lo), "ci_high": _r(hi), "baseline": _r(baseline),
                          "baseline_kind": kind if baseline is not None else None, "failures": int(failures)})
    deciles = []
    for name in scorers:
        if name not in DECILE_SCORERS:
            continue
        groups: dict[int, list[int]] = {}
        for r in scored:
            for row in (r["scores"].get(name) or {}).get("deciles") or []:
                g = groups.setdefault(row["decile"], [0, 0])
                g[0] += row["correct"]
                g[1] += row["n"]
        for d in [0] + list(range(1, 11)):
            k, n = groups.get(d, [0, 0])
            lo, hi = metrics.wilson(k, n)
            deciles.append({"scorer": name, "group": "non-activating" if d == 0 else f"decile {d}",
                            "decile": d, "n": n, "correct": k, "rate": _r(k / n) if n else None,
                            "ci_low": _r(lo), "ci_high": _r(hi)})
    failed_expl = sum(1 for r in scored if not (r.get("explanation") or {}).get("text"))
    return {"units": len(records), "status": status, "explanation_failures": failed_expl,
            "table": table, "deciles": deciles}


def table_lines(summ: dict) -> list[str]:
    head = f"{'scorer':<11}{'metric':<19}{'units':>6}{'mean':>8}  {'95% interval':<17}{'baseline':>9}"
    lines = [head]
    for row in summ["table"]:
        mean = "-" if row["mean"] is None else f"{row['mean']:.3f}"
        ci = ("" if row["ci_low"] is None else f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]")
        base = "-" if row["baseline"] is None else f"{row['baseline']:.3f} {row['baseline_kind']}"
        lines.append(f"{row['scorer']:<11}{row['metric']:<19}{row['units']:>6}{mean:>8}  {ci:<17}{base:>9}")
    return lines


def _csv(rows: list[dict]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    out = [",".join(cols)]
    for r in rows:
        out.append(",".join("" if r[c] is None else str(r[c]) for c in cols))
    return "\n".join(out) + "\n"


def write_tables(summ: dict, out: Path) -> None:
    atomic_write_text(out / "summary.csv", _csv(summ["table"]))
    atomic_write_text(out / "deciles.csv", _csv(summ["deciles"]))


def decile_figure(summ: dict, out_dir: Path) -> list[Path]:
    """Share judged correctly per activation decile and on non-activating windows, 95% intervals."""
    rows = summ["deciles"]
    if not rows:
        return []
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    names = list(dict.fromkeys(r["scorer"] for r in rows))
    for k, name in enumerate(names):
        sel = [r for r in rows if r["scorer"] == name and r["rate"] is not None]
        x = np.array([r["decile"] for r in sel], dtype=float) + (k - (len(names) - 1) / 2) * 0.15
        y = np.array([r["rate"] for r in sel])
        err = np.array([[r["rate"] - r["ci_low"], r["ci_high"] - r["rate"]] for r in sel]).T
        ax.errorbar(x, y, yerr=err if len(sel) else None, fmt="o-", capsize=2, label=name)
    ax.set_xticks(range(11), ["non-act."] + [str(d) for d in range(1, 11)])
    ax.set_xlabel("activation decile of the test window (0 = non-activating)")
    ax.set_ylabel("judged correctly")
    ax.set_ylim(-0.02, 1.02)
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
    ax.legend(fontsize=8)
    ax.set_title("recall per decile; non-activating: share judged not activating")
    return save_figures(fig, out_dir, "deciles", dpi=120)
