"""The chess experiment's report: tables laid out like the MoE-X paper's, with its numbers beside.

Reads every finished evaluation stage and writes ``report/``: ``runs.csv`` (one row per trained
model: loss, legal-move rate, the headline function's coverage and reconstruction with their
chance levels, router entropy, L0, probe accuracy), ``boardgame.csv`` (every BSP function and
unit space), ``probe.csv``, ``language.csv``, ``tables.md`` and figures. Seeds are summarised as
mean ± sample sd (n given); a single run shows its value alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from moelens.experiments.seed_stats import mean_sd
from moelens.rundir import atomic_path, atomic_write_text

HEADLINE = "piece_masked_blank_and_initial"

PAPER_T1 = {"dense_gelu": ("GELU (GPT-2)", 0.213, 0.356, 0.608),
            "dense_relu": ("ReLU", 0.215, 0.312, 0.581),
            "switch": ("Switch", 0.212, 0.424, 0.734),
            "moex": ("MoE-X (from scratch)", None, 0.398, 0.657),
            "moex_upcycled": ("MoE-X (upcycled; the paper's Table 1 MoE-X)", 0.211, 0.428, 0.840)}
PAPER_T3 = {"switch": ("neither (= Switch)", 0.424, 0.734),
            "gelu_sparsity": ("sparsity router only", 0.404, 0.740),
            "relu_softmax": ("ReLU experts only", 0.418, 0.829),
            "moex": ("both (= MoE-X)", 0.428, 0.840)}
PAPER_T4 = {"dense_gelu": ("dense", 0.356, 0.608),
            "dense_continued": ("dense, continued training", 0.377, 0.674),
            "moex": ("MoE-X from scratch", 0.398, 0.657),
            "moex_upcycled": ("MoE-X upcycled", 0.428, 0.840)}
PAPER_T2 = {"dense_gelu": ("GPT-2 S", 22.83), "switch": ("Switch-S", 18.36),
            "moex": ("MoE-X-S", 19.42)}
"""Table 2: perplexity on OpenWebText of the paper's GPT-2-Small-sized models."""


def run_row(name: str, kind: str, seed: int, res: dict[str, Any], rows: list[dict], layer: int,
            train: dict[str, Any]) -> dict[str, Any]:
    """One runs.csv row from a model's evaluation results and board rows."""
    def head(space_sem):
        for r in rows:
            if r["function"] == HEADLINE and (r["space"], r["semantics"]) in space_sem:
                return r
        return {}

    main = head({("expert", "gated"), ("ffn", "")})
    ungated = head({("expert", "zero_filled")})
    stats = res.get("router", {}).get(str(layer), {})
    probe = {p["layer"]: p for p in res.get("probe", [])}.get(layer, {})
    return {"model": name, "kind": kind, "seed": seed, "val_loss": res["val_loss"],
            "legal_move_rate": res["legal_move_rate"], "coverage": main.get("coverage"),
            "chance_coverage": main.get("chance_coverage"),
            "reconstruction": main.get("reconstruction"),
            "reconstruction_paper": main.get("reconstruction_paper"),
            "chance_reconstruction": main.get("chance_reconstruction"),
            "coverage_ungated": ungated.get("coverage"),
            "reconstruction_ungated": ungated.get("reconstruction"),
            "n_units": main.get("n_units"), "n_alive": main.get("n_alive"),
            "n_labelled": main.get("n_labelled"), "router_entropy": stats.get("router_entropy"),
            "max_entropy": stats.get("max_entropy"), "top1_weight": stats.get("top1_weight"),
            "l0": stats.get("l0"), "probe_accuracy": probe.get("accuracy"),
            "probe_accuracy_changed": probe.get("accuracy_changed"),
            "parameters": train.get("parameters"), "train_tokens": train.get("tokens"),
            "train_seconds": train.get("seconds")}


def fmt(values, digits: int = 3) -> str:
    """'m ± sd (n=k)' over seeds, the value alone for one run, '–' for none."""
    return mean_sd(values, digits)


def _paper(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def _col(runs: pd.DataFrame, kind: str, column: str, digits: int = 3) -> str:
    return fmt(runs.loc[runs["kind"] == kind, column].tolist() if len(runs) else [], digits)


def tables(runs: pd.DataFrame, probe: pd.DataFrame, language: pd.DataFrame,
           sae: dict[str, Any] | None, layer: int) -> str:
    """tables.md: the paper's Tables 1, 3, 4 (and 2) with ours beside, plus router and probe."""
    have = set(runs["kind"]) if len(runs) else set()
    out = [f"Scored layer: {layer}. Coverage and reconstruction are those of "
           f"`{HEADLINE}` on the MLP hidden units (MoE: the gated wide view z). Chance: coverage "
           "of units that ignore the board at the same firing rate (see boardgame.md).", ""]
    out += ["## Table 1: dense vs MoE (matched activated parameters)", "",
            "| model | val loss (ours) | coverage (ours) | chance | reconstruction (ours) | "
            "legal moves | val loss (paper) | coverage (paper) | reconstruction (paper) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for kind, (label, loss, cov, rec) in PAPER_T1.items():
        if kind in have:
            out.append(f"| {label} | {_col(runs, kind, 'val_loss')} | "
                       f"{_col(runs, kind, 'coverage')} | {_col(runs, kind, 'chance_coverage')} | "
                       f"{_col(runs, kind, 'reconstruction')} | "
                       f"{_col(runs, kind, 'legal_move_rate')} | {_paper(loss)} | {_paper(cov)} "
                       f"| {_paper(rec)} |")
    for title, paper in (("Table 3: ablation (ReLU experts, sparsity router)", PAPER_T3),
                         ("Table 4: training recipe", PAPER_T4)):
        out += ["", f"## {title}", "", "| model | coverage (ours) | reconstruction (ours) | "
                "coverage (paper) | reconstruction (paper) |", "|---|---|---|---|---|"]
        for kind, (label, cov, rec) in paper.items():
            if kind in have:
                out.append(f"| {label} | {_col(runs, kind, 'coverage')} | "
                           f"{_col(runs, kind, 'reconstruction')} | {_paper(cov)} | "
                           f"{_paper(rec)} |")
    out += ["", "## Router entropy, top-1 weight and L0 (scored layer, held-out games)", "",
            "| model | router entropy (nats) | of max | top-1 weight | L0 (active units) | "
            "units | coverage | reconstruction |", "|---|---|---|---|---|---|---|---|"]
    for kind in ("switch", "moex", "relu_softmax", "gelu_sparsity", "moex_temp",
                 "moex_upcycled", "dense_gelu", "dense_relu"):
        if kind in have:
            sub = runs[runs["kind"] == kind]
            out.append(f"| {kind} | {_col(runs, kind, 'router_entropy')} | "
                       f"{_col(runs, kind, 'max_entropy', 2)} | {_col(runs, kind, 'top1_weight')}"
                       f" | {_col(runs, kind, 'l0', 1)} | {int(sub['n_units'].iloc[0])} | "
                       f"{_col(runs, kind, 'coverage')} | {_col(runs, kind, 'reconstruction')} |")
    if sae:
        out += ["", "## SAE baseline (on the dense GELU model's MLP)", "",
                "| | coverage | chance | reconstruction | alive latents | L0 | dead fraction | "
                "FVE |", "|---|---|---|---|---|---|---|---|",
                f"| SAE (ours) | {fmt([sae.get('coverage')])} | {fmt([sae.get('chance_coverage')])}"
                f" | {fmt([sae.get('reconstruction')])} | {sae.get('n_alive')} | "
                f"{fmt([sae.get('l0')], 1)} | {fmt([sae.get('dead_fraction')])} | "
                f"{fmt([sae.get('fve')])} |",
                "| residual SAE (Karvonen et al., layer 5 of 8) | 0.496 | | 0.836 | ≈6900 | "
                "≈30 | | |"]
    if len(probe):
        out += ["", "## Residual board probe (8×8×13, test accuracy)", "",
                "| model | layer | accuracy | on changed squares | majority baseline | "
                "majority on changed |", "|---|---|---|---|---|---|"]
        for r in probe.itertuples():
            out.append(f"| {r.model} | {r.layer} | {r.accuracy:.3f} | {r.accuracy_changed:.3f} | "
                       f"{r.majority_accuracy:.3f} | {r.majority_accuracy_changed:.3f} |")
        out += ["", PROBE_CONTROLS]
    if len(language):
        out += ["", "## Table 2 (orientation only): language perplexity", "",
                "| model | held-out perplexity (ours, offline prose + code) | paper (OpenWebText, "
                "GPT-2 S scale) |", "|---|---|---|"]
        for r in language.itertuples():
            label, ppl = PAPER_T2[r.kind]
            out.append(f"| {label} | {r.perplexity:.2f} | {ppl:.2f} |")
    return "\n".join(out) + "\n"


PROBE_CONTROLS = (
    "Controls: `dense_untrained` is the dense GELU model at its initial random weights (what a "
    "linear probe reads with no learning at all: the corrected control); `dense_random` is the "
    "reference's control, a dense GELU model trained on random-move games, which must track the "
    "board too to predict legal moves, so it can match a chess-trained model without showing "
    "that neither has learned the board. A model has learned the board when it clearly beats "
    "`dense_untrained`, above all on the changed squares.")


def write_csv(path: Path, df: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


def headline_figure(runs: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Coverage and reconstruction per model kind (bars: mean ± sd over seeds, dots: seeds),
    chance levels as black ticks."""
    from moelens.analysis.boardgame.figures import DPI
    from moelens.plotting import pyplot, save_figures

    plt = pyplot()
    kinds = list(dict.fromkeys(runs["kind"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, col, chance in ((axes[0], "coverage", "chance_coverage"),
                            (axes[1], "reconstruction", "chance_reconstruction")):
        g = runs.groupby("kind", sort=False)[col]
        mean, sd = g.mean().reindex(kinds), g.std(ddof=1).reindex(kinds).fillna(0)
        ax.bar(range(len(kinds)), mean, yerr=sd, capsize=3, color="tab:blue", alpha=0.8)
        x = runs["kind"].map({k: i for i, k in enumerate(kinds)})
        ax.scatter(x, runs[col], s=10, color="tab:orange", zorder=3, label="one seed")
        ch = runs.groupby("kind", sort=False)[chance].mean().reindex(kinds)
        ax.scatter(range(len(kinds)), ch, marker="_", s=200, color="black", label="chance")
        ax.set_xticks(range(len(kinds)))
        ax.set_xticklabels(kinds, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel(f"{col} ({HEADLINE})", fontsize=8)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figures(fig, out_dir, "headline", dpi=DPI)


def write_report(out: Path, runs: list[dict], board: list[dict], probe: list[dict],
                 language: list[dict], cells: dict[str, Any], sae: dict[str, Any] | None,
                 layer: int) -> dict[str, Any]:
    """Write every report file; returns a small summary."""
    from moelens.analysis.boardgame.figures import draw_all

    runs_df, probe_df, lang_df = pd.DataFrame(runs), pd.DataFrame(probe), pd.DataFrame(language)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "runs.csv", runs_df)
    write_csv(out / "boardgame.csv", pd.DataFrame(board))
    if len(probe_df):
        write_csv(out / "probe.csv", probe_df)
    if len(lang_df):
        write_csv(out / "language.csv", lang_df)
    atomic_write_text(out / "tables.md", tables(runs_df, probe_df, lang_df, sae, layer))
    figures = headline_figure(runs_df, out / "figures") if len(runs_df) else []
    def main(space: str, semantics: str) -> bool:
        return space in ("ffn", "sae") or (space, semantics) == ("expert", "gated")

    shown = [r for r in board if r["model"] in cells and main(r["space"], r["semantics"])]
    keep = {m: {k: v for k, v in per.items() if main(*(k.split("/") + [""])[1:3])}
            for m, per in cells.items()}
    if shown:
        figures += draw_all(out / "figures", shown, keep)
    return {"models": len(runs), "figures": [str(p.relative_to(out)) for p in figures]}
