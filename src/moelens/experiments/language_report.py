"""The language experiment's report: ``report/tables.md``, one CSV per table and the figures,
rebuilt from the finished stages (a stage not yet run is simply absent from its table).

The paper's numbers are printed beside ours where a like-for-like one exists; ours are means
with 95% intervals (bootstrap over units or concepts, Wilson for decile rates).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from moelens.experiments import language_figures as figs
from moelens.experiments import language_seeds as seeds
from moelens.experiments.language_models import split_seed
from moelens.rundir import atomic_write_text

PAPER_FIG8 = ("MoE-X Fig. 8 (GPT-2 scale, 1000 layer-8 neurons, LLM explainer and judge): "
              "MoE-X-S about equal to GPT-2 + SAE, MoE-X-M above it; the dense GPT-2 neurons "
              "lowest.")
PAPER_PROBE = ("The Expert Strikes Back: mean best-layer F1 of hub MoEs 0.918-0.978 at k=1 "
               "and 0.963-0.993 at k=64, dense models 0.808-0.851 / 0.913-0.941 (MoE minus "
               "matched dense +0.10 to +0.14 at k=1); k=1 F1 rises with routing sparsity "
               "(active/total 0.25 -> 0.918, 0.12 -> 0.954, 0.08 -> 0.962, 0.06 -> 0.978).")
PAPER_LABELS = ("The Expert Strikes Back: binary F1 of expert labels mean 0.824, median 0.857, "
                "68% of experts >= 0.8, 14.6% at or below the all-yes baseline 0.667; "
                "trigger test (OLMoE): own prompts routed 80%, top contributor 31% (39% given "
                "routed), others' prompts routed 11%, top 1%; specialization: input 0.02-0.20, "
                "output near 0 early, up to ~0.4 late.")


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _ci(mean: Any, lo: Any, hi: Any) -> str:
    return f"{_fmt(mean)} [{_fmt(lo)}, {_fmt(hi)}]" if mean is not None else "-"


def _md(df: pd.DataFrame) -> list[str]:
    if df.empty:
        return ["(no finished stage yet)"]
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(_fmt(r[c]) for c in cols) + " |")
    return lines


def models_table(stages: dict[str, Any], base_seed: int = 0) -> pd.DataFrame:
    rows = []
    for name, st in stages.items():
        if name.startswith("train-"):
            s = st["summary"]
            kind, seed = split_seed(name[6:])
            rows.append({"model": name[6:], "kind": kind,
                         "seed": int(s.get("seed", base_seed if seed is None else seed)),
                         "top_k": s.get("top_k"),
                         "routing_density": s.get("routing_density"),
                         "parameters": s.get("parameters"), "val_loss": s.get("val_loss"),
                         "perplexity": s.get("perplexity"),
                         "train_minutes": st["wall_seconds"] / 60})
    return pd.DataFrame(rows)


def fig8_tables(root: Path, stages: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per unit kind: detection/fuzzing balanced accuracy; per decile rates)."""
    from moelens.experiments.language_units import FIG8_UNITS

    head, dec = [], []
    for name in stages:
        if not name.startswith("neurons-") or split_seed(name)[1] is not None:
            continue  # the extra seeds have their own table (language_seeds)
        kind = name.removeprefix("neurons-").removeprefix("hf-")
        explainer = "smollm2" if name.startswith("neurons-hf-") else "rules"
        summ = _json(root / name / "interpret" / "summary.json") or {}
        row = {"units": FIG8_UNITS[kind][2], "explainer": explainer,
               "dead_in_space": stages[name]["summary"].get("dead_in_space"),
               "neurons": summ.get("units"), "scored": (summ.get("status") or {}).get("ok", 0)}
        for t in summ.get("table", []):
            if t["metric"] == "balanced_accuracy" and t["scorer"] in ("detection", "fuzzing"):
                row[t["scorer"]] = _ci(t["mean"], t["ci_low"], t["ci_high"])
        head.append(row)
        for d in summ.get("deciles", []):
            dec.append({"units": kind, "explainer": explainer, **d})
    return pd.DataFrame(head), pd.DataFrame(dec)


PROBE_STATS = ("best_unit_f1", "val_selected_test_f1", "mean_expert_f1_at_best_layer")


def probe_table(root: Path, stages: dict[str, Any]) -> tuple[pd.DataFrame, Any]:
    """Per model, family (probed units or control), statistic and k: mean F1 and its interval,
    every mean over the concepts all finished probe runs have (an MoE loses a concept when no
    expert sees enough of it; means over different concept sets do not compare). Returns the
    table and the comparison (None before any probe run is done)."""
    from moelens.analysis.probing import compare, headline

    names = [n for n in stages if n.startswith("probe-") and split_seed(n)[1] is None
             and (root / n / "probe" / "summary.json").exists()]
    if not names:
        return pd.DataFrame(), None
    cmp = compare.compare([root / n / "probe" for n in names], n_boot=1000)
    rows = []
    for run in cmp.runs:
        train = stages.get(f"train-{run.name}", {}).get("summary", {})
        fams = [run.main] + [f for f in headline.BASELINES if f in set(run.stats["family"])]
        for fam in fams:
            for stat in PROBE_STATS:
                for _, r in cmp.means(run, fam, stat).iterrows():
                    rows.append({"model": run.name, "routing_density": train.get("routing_density"),
                                 "family": fam, "statistic": stat, "k": int(r["k"]),
                                 "mean": r["mean"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                                 "concepts": int(r["n_concepts"])})
    return pd.DataFrame(rows), cmp


def concept_wins(cmp: Any) -> pd.DataFrame:
    """Per MoE and k: on how many shared concepts its best unit beats the dense model's (the
    paper: MoEs win on 55-57 of 58), under both protocols."""
    if cmp is None:
        return pd.DataFrame()
    runs = {r.name: r for r in cmp.runs}
    if "dense_gelu" not in runs:
        return pd.DataFrame()

    def per_concept(run, stat):
        s = run.stats[(run.stats["family"] == run.main) & run.stats["concept"].isin(cmp.concepts)]
        return s.groupby(["k", "concept"])[stat].mean()

    out = []
    for name, run in runs.items():
        if name == "dense_gelu":
            continue
        row: dict[str, Any] = {"model": name, "concepts": len(cmp.concepts)}
        for stat, tag in (("best_unit_f1", "paper"), ("val_selected_test_f1", "corrected")):
            moe, dense = per_concept(run, stat), per_concept(runs["dense_gelu"], stat)
            both = pd.concat([moe.rename("moe"), dense.rename("dense")], axis=1).dropna()
            for k, g in both.groupby(level="k"):
                row[f"wins_{tag}_k{int(k)}"] = int((g["moe"] > g["dense"]).sum())
        out.append(row)
    return pd.DataFrame(out)


def probe_gaps(probe: pd.DataFrame) -> pd.DataFrame:
    """MoE minus dense before the controls (paper protocol, best unit vs best unit), after them
    (validation-selected test F1 of each), and MoE minus each baseline in its own store."""
    if probe.empty or "dense_gelu" not in set(probe["model"]):
        return pd.DataFrame()
    out = []

    def get(model, family, stat, k):
        sel = probe[(probe["model"] == model) & (probe["family"] == family)
                    & (probe["statistic"] == stat) & (probe["k"] == k)]
        return float(sel["mean"].iloc[0]) if len(sel) else None

    def diff(a, b):
        return None if a is None or b is None else a - b

    for model in [m for m in dict.fromkeys(probe["model"]) if m != "dense_gelu"]:
        for k in sorted(set(probe["k"])):
            row = {"model": model, "k": k}
            for stat, tag in (("best_unit_f1", "paper"), ("val_selected_test_f1", "corrected")):
                moe, dense = get(model, "expert", stat, k), get("dense_gelu", "ffn", stat, k)
                row[f"moe_{tag}"], row[f"dense_{tag}"] = moe, dense
                row[f"gap_{tag}"] = diff(moe, dense)
            for fam in ("routed_tokens", "random_routing", "dense_store", "shuffled_labels"):
                row[f"{fam}_paper"] = get(model, fam, "best_unit_f1", k)
            row["moe_minus_routed_tokens"] = diff(row["moe_paper"], row["routed_tokens_paper"])
            row["moe_minus_dense_store"] = diff(row["moe_paper"], row["dense_store_paper"])
            for fam in ("routed_tokens", "dense_store"):
                row[f"{fam}_corrected"] = get(model, fam, "val_selected_test_f1", k)
            row["moe_minus_dense_store_corrected"] = diff(row["moe_corrected"],
                                                          row["dense_store_corrected"])
            row["moe_mean_unit_at_best_layer"] = get(model, "expert",
                                                     "mean_expert_f1_at_best_layer", k)
            out.append(row)
    return pd.DataFrame(out)


def labels_table(root: Path, stages: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for name, st in stages.items():
        if not name.startswith("labels-"):
            continue
        s = st["summary"]
        b = s.get("binary") or {}
        rows.append({"model": name.removeprefix("labels-").removeprefix("hf-"),
                     "explainer": "smollm2" if name.startswith("labels-hf-") else "rules",
                     "experts": s.get("units"), "labelled": (s.get("status") or {}).get("ok", 0),
                     "binary_f1": _ci(b.get("mean"), b.get("ci_low"), b.get("ci_high")),
                     "all_yes_f1": b.get("baseline"),
                     "share_at_or_below_all_yes": s.get("share_at_or_below_all_yes"),
                     "share_f1_at_least_0.8": s.get("share_at_least_0.8")})
    return pd.DataFrame(rows)


def labels_by_layer(root: Path, stages: dict[str, Any]) -> pd.DataFrame:
    """Mean binary F1 of the labels per MoE layer (the paper: first layers hardest)."""
    from moelens.experiments.language_experts import unit_records

    rows = []
    for name in stages:
        if not name.startswith("labels-"):
            continue
        for rec in unit_records(root / name / "interpret"):
            f1 = ((rec.get("scores") or {}).get("binary") or {}).get("metrics", {}).get("f1")
            if rec["status"] == "ok" and f1 is not None:
                rows.append({"model": name.removeprefix("labels-"), "layer": rec["unit"]["layer"],
                             "f1": f1})
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    g = df.groupby(["model", "layer"])["f1"]
    return g.agg(["count", "mean", "median"]).reset_index().rename(
        columns={"count": "experts", "mean": "mean_f1", "median": "median_f1"})


def trigger_table(stages: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for name, st in stages.items():
        if name.startswith("trigger-"):
            s = st["summary"]
            for r in s.get("rank_table") or [{"kind": "-", "n": 0}]:
                rows.append({"model": name[8:], "experts_with_cases": s.get("experts_with_cases"),
                             "rejected": s.get("rejected"), **r})
    return pd.DataFrame(rows)


def specialization_table(root: Path, stages: dict[str, Any]) -> pd.DataFrame:
    frames = []
    for name in stages:
        if name.startswith("specialize-"):
            path = root / name / "specialize" / "specialization.csv"
            if path.exists():
                df = pd.read_csv(path)
                df = df[df["status"] == "tested"] if "status" in df else df
                g = df.groupby(["layer", "view", "k"])[["jsd", "null", "specialization"]].mean()
                frames.append(g.reset_index().assign(model=name[11:]))
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames)
    return df[["model", "layer", "view", "k", "jsd", "null", "specialization"]]


def knowledge_table(stages: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for name, st in stages.items():
        if name.startswith("knowledge-"):
            for c in st["summary"].get("curves") or []:
                rows.append({"model": name[10:], **c})
    return pd.DataFrame(rows)


def _seed_list(models: pd.DataFrame, cfg: Any) -> str:
    """The extra seeds whose models finished training ('none' without any)."""
    if models.empty:
        return "none"
    done = sorted({int(s) for s in models["seed"].dropna() if int(s) != cfg.lm.seed})
    return ", ".join(map(str, done)) or "none"


def _smollm2_md(df: pd.DataFrame) -> list[str]:
    """SmolLM2's Fig. 8 row (explanations and judge), and both explanation sets under MiniLM."""
    if df.empty:
        return []
    cols = {"units": "units", "neurons": "neurons", "scored": "with enough windows",
            "explanations": "explanations given",
            "smollm2_detection_balanced_accuracy": "detection (SmolLM2 judge)",
            "smollm2_detection_auroc": "detection AUROC (SmolLM2 judge)",
            "smollm2_fuzzing_balanced_accuracy": "fuzzing (SmolLM2 judge)",
            "smollm2_embedding_auroc": "MiniLM AUROC, SmolLM2 explanations",
            "rules_embedding_auroc": "MiniLM AUROC, rules explanations (same windows)",
            "judge_yes_share": "SmolLM2 judge: share of windows called activating",
            "distinct_explanations": "distinct explanations",
            "explanations_copying_example": "explanations copying the prompt's example"}
    out = pd.DataFrame({v: df[k] if k in df else None for k, v in cols.items()})
    return ["SmolLM2-135M as explainer and judge on the first neurons of each kind's random "
            "draw (95% intervals in `fig8_smollm2.csv`; chance and all-yes 0.5):", "",
            *_md(out), ""]


def write(cfg: Any, summary: dict[str, Any]) -> Path:
    """Write ``report/`` from ``summary`` (what run_pipeline returned); returns its path."""
    root = Path(cfg.out)
    rep = root / "report"
    stages = summary["stages"]
    models = models_table(stages, cfg.lm.seed)
    fig8, deciles = fig8_tables(root, stages)
    probe, cmp = probe_table(root, stages)
    gaps = probe_gaps(probe)
    wins = concept_wins(cmp)
    sparsity = figs.sparsity_figure(probe, rep / "figures" / "probe_sparsity.png", PROBE_STATS[:2])
    figs.fig8_figure(deciles, rep / "figures" / "fig8_deciles.png")
    fig8_seeds = seeds.fig8_per_seed(root, stages, cfg.lm.seed)
    probe_seeds, seed_cmp = seeds.probe_per_seed(root, stages, cfg.lm.seed, PROBE_STATS)
    gap_seeds = seeds.gaps_per_seed(probe_seeds, probe_gaps)
    smollm2 = seeds.smollm2_table(root, stages)
    tables = {"models": models, "fig8": fig8, "fig8_deciles": deciles, "probe": probe,
              "probe_gaps": gaps, "probe_wins": wins, "probe_sparsity": sparsity,
              "labels": labels_table(root, stages),
              "labels_by_layer": labels_by_layer(root, stages), "trigger": trigger_table(stages),
              "specialization": specialization_table(root, stages),
              "knowledge": knowledge_table(stages), "fig8_seeds": fig8_seeds,
              "fig8_seeds_summary": seeds.summarize(fig8_seeds, ["units"],
                                                    ["detection", "fuzzing"]),
              "probe_seeds": probe_seeds, "probe_gaps_seeds": gap_seeds,
              "probe_gaps_seeds_summary": seeds.summarize(gap_seeds, ["model", "k"],
                                                          list(seeds.GAP_COLUMNS)),
              "fig8_smollm2": smollm2}
    for name, df in tables.items():
        atomic_write_text(rep / f"{name}.csv", df.to_csv(index=False))
    corpora = stages.get("corpora", {}).get("summary", {})
    lines = ["# Language experiment", "",
             f"Run directory `{root.name}`; {len(stages)} stages, "
             f"{summary['total_wall_seconds'] / 60:.1f} min of stage time. Corpus documents: "
             f"{corpora.get('documents')} (an empty domain has no data). Seeds: models "
             f"{cfg.lm.seed}, analyses {cfg.seed}, probing {list(cfg.probe.seeds)}; extra "
             f"training seeds of dense GELU, Switch and MoE-X: {_seed_list(models, cfg)}. "
             "Intervals in brackets are 95% bootstraps over units, experts or concepts of one "
             "model (seed " f"{cfg.lm.seed}" "); 'm ± sd (n)' is over training seeds.", "",
             "## Models (equal active FFN width, equal budget)", "", *_md(models), "",
             "## Claim 1: MoE-X Fig. 8, neuron auto-interpretation", "", PAPER_FIG8, "",
             f"Layer {cfg.scored_layer}; balanced accuracy, mean over neurons [95% interval]; "
             "per-decile rates in `fig8_deciles.csv`, `figures/fig8_deciles.png`.", "",
             *_md(fig8), "", *seeds.seed_markdown(fig8_seeds, pd.DataFrame()),
             *_smollm2_md(smollm2),
             "## Claim 2: polysemanticity by k-sparse probing", "", PAPER_PROBE, "",
             "`paper` = best unit on the held-out split (the paper's protocol, biased upward); "
             "`corrected` = unit chosen on a validation half, F1 on the test half. Baselines "
             "(paper protocol): routed_tokens = the MoE's residual dimensions on each expert's "
             "own tokens, random_routing = same on random expert-sized subsets, dense_store = "
             "the dense model's MLP neurons on random expert-sized subsets, shuffled_labels = "
             "each expert with permuted labels; moe_mean_unit_at_best_layer = the mean expert "
             "at the best expert's layer (the distribution behind the maximum). All intervals "
             "in `probe.csv`.", "", (cmp.note().capitalize() if cmp else "-") + ".", "",
             *_md(gaps), "", *seeds.seed_markdown(pd.DataFrame(), gap_seeds),
             *([f"Seed table: {seed_cmp.note()}.", ""] if seed_cmp else []),
             "Concepts on which the MoE's best unit beats the dense model's:",
             "", *_md(wins), "", "k=1 F1 against routing sparsity (`figures/probe_sparsity.png`):",
             "", *_md(sparsity), "",
             "## Claim 3: experts as the unit", "", PAPER_LABELS, "",
             "Expert labels, binary test (10 held-out top windows + 10 other experts' windows):",
             "", *_md(tables["labels"]), "", "Per layer:", "", *_md(tables["labels_by_layer"]),
             "",
             "Trigger -> target cases generated from the labels (matched = the expert on its own "
             "cases, control = on the other experts' cases):", "", *_md(tables["trigger"]), "",
             "Specialization (mean over experts; JSD and the small-sample null in bits):", "",
             *_md(tables["specialization"]), "",
             "Knowledge control by domain (Δ loss when a domain's top-n experts are ablated, "
             "against n random experts):", "", *_md(tables["knowledge"]), ""]
    atomic_write_text(rep / "tables.md", "\n".join(lines))
    return rep
