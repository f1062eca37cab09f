"""Figures of the language experiment's report: MoE-X Fig. 8's layout (accuracy per activation
decile, one panel per scorer) and k=1 probing F1 against routing sparsity."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from moelens.plotting import pyplot, save_figure


def fig8_figure(dec: pd.DataFrame, out: Path) -> None:
    """Accuracy per activation decile and on non-activating windows, one line per unit kind,
    one panel per scorer (the layout of MoE-X Fig. 8)."""
    plt = pyplot()

    if dec.empty:
        return
    scorers = sorted(set(dec["scorer"]))
    fig, axes = plt.subplots(1, len(scorers), figsize=(5.5 * len(scorers), 3.6), squeeze=False)
    for ax, scorer in zip(axes[0], scorers):
        sel = dec[(dec["scorer"] == scorer) & (dec["n"] > 0)]
        for j, ((kind, expl), g) in enumerate(sel.groupby(["units", "explainer"])):
            g = g.sort_values("decile")
            x = g["decile"].to_numpy() + (j - 1.5) * 0.08
            y = g["rate"].astype(float).to_numpy()
            err = [y - g["ci_low"].astype(float).to_numpy(), g["ci_high"].astype(float).to_numpy() - y]
            ax.errorbar(x, y, yerr=err, marker="o", ms=3, capsize=2, label=f"{kind} ({expl})")
        ax.set_xticks(range(11), ["non-act."] + [str(i) for i in range(1, 11)])
        ax.set_xlabel("activation decile")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.02)
        ax.set_title(scorer)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out, dpi=120, bbox_inches=None)


def sparsity_figure(probe: pd.DataFrame, out: Path, stats: tuple[str, ...]) -> pd.DataFrame:
    """k=1 F1 against routing density for the MoEs (both protocols), the dense model as a line."""
    plt = pyplot()

    sel = probe[(probe["k"] == 1) & (probe["family"] == "expert")] if not probe.empty else probe
    if sel.empty:
        return pd.DataFrame()
    table = sel.pivot_table(index=["model", "routing_density"], columns="statistic",
                            values="mean").reset_index().sort_values("routing_density")
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for stat in stats:
        if stat in table:
            ax.plot(table["routing_density"], table[stat], marker="o", label=f"MoE {stat}")
        dense = probe[(probe["model"] == "dense_gelu") & (probe["k"] == 1)
                      & (probe["statistic"] == stat) & (probe["family"] == "ffn")]
        if len(dense):
            ax.axhline(float(dense["mean"].iloc[0]), ls=":", color="grey")
    ax.set_xlabel("routing density (top-k / experts)")
    ax.set_ylabel("mean F1 at k=1")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out, dpi=120, bbox_inches=None)
    return table


