"""Stages of the language experiment that treat the expert as the unit (The Expert Strikes Back
§3-5): expert labels scored by the binary test, trigger -> target cases made from the labels,
input/output specialization with the small-sample null, and the domain knowledge control.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from moelens.experiments.language_units import headline, read_json


def labels(stage: Path, model_dir: Path, store: Path, cfg: Any, explainer: str
           ) -> dict[str, Any]:
    """Label every expert of every layer (the paper's protocol: top windows, scores router
    weight x |expert output|, promoted tokens after the final norm) and score the labels with
    the binary test against the all-yes baseline (F1 0.667)."""
    from moelens.analysis.autointerp.command import HFBackend, InterpretConfig
    from moelens.analysis.autointerp.run import interpret
    from moelens.capture.lens import LensConfig
    from moelens.capture.lens import run as lens

    e = cfg.experts
    if not (store / "lens.json").exists():
        lens(LensConfig(model=str(model_dir), store=store, quiet=True))
    interpret(InterpretConfig(
        store=store, out=stage / "interpret", level="expert", units=["all"], expert_score="out",
        explainer=explainer, scorers=["binary"], sampling="top", n_explain=e.n_explain,
        n_test=e.n_test, n_negative=e.n_negative, min_examples=e.min_examples,
        negatives=["others"], hf=HFBackend(threads=cfg.lm.cpu_threads or None), seed=cfg.seed,
        quiet=cfg.quiet))
    summ = read_json(stage / "interpret" / "summary.json")
    out = headline(summ, ("binary",), "f1")
    f1 = [u["scores"]["binary"]["metrics"].get("f1") for u in unit_records(stage / "interpret")
          if u["status"] == "ok" and "binary" in u["scores"]]
    f1 = [x for x in f1 if x is not None]
    if f1:
        out["share_at_or_below_all_yes"] = sum(x <= 2 / 3 + 1e-9 for x in f1) / len(f1)
        out["share_at_least_0.8"] = sum(x >= 0.8 for x in f1) / len(f1)
    return out


def unit_records(interpret_dir: Path) -> list[dict[str, Any]]:
    """Every unit record of a finished interpret run."""
    return [json.loads(p.read_text()) for p in sorted((interpret_dir / "units").glob("*.json"))]


def make_cases(records: list[dict[str, Any]], per_expert: int = 3) -> list[dict[str, Any]]:
    """Trigger -> target cases from labelled experts.

    The trigger is the token the expert scored highest most often across its explainer windows
    (the label's evidence, stripped of spaces); the target is its first promoted token (logit
    lens after the final norm); each case's text is one of its top windows cut right after the
    trigger, so the target is what the expert should promote next. Experts without a label, a
    printable trigger or a printable promoted token give no case (counted by the caller)."""
    cases = []
    for rec in records:
        expl = rec.get("explanation") or {}
        wins = (rec.get("examples") or {}).get("explain") or []
        if rec["status"] != "ok" or not expl.get("text") or not rec.get("promoted") or not wins:
            continue
        peaks = [w["tokens"][max(range(len(w["acts"])), key=w["acts"].__getitem__)] for w in wins]
        trigger = Counter(t.strip() for t in peaks if t.strip()).most_common(1)
        target = rec["promoted"][0]
        if not trigger or not target.strip():
            continue
        trig = trigger[0][0]
        unit = rec["unit"]
        made = 0
        for w in wins:
            ends = [i for i, t in enumerate(w["tokens"]) if t.strip() == trig]
            if not ends:
                continue
            text = "".join(w["tokens"][:ends[-1] + 1])
            cases.append({"id": f"L{unit['layer']}.E{unit['expert']}.{made}", "text": text,
                          "trigger": trig, "target": target.strip(),
                          "leading_space": target[:1].isspace(), "layer": unit["layer"],
                          "expert": unit["expert"], "label": expl["text"]})
            made += 1
            if made == per_expert:
                break
    return cases


def trigger(stage: Path, model_dir: Path, labels_dir: Path, cfg: Any) -> dict[str, Any]:
    """Generate the cases from the labels and run the trigger -> target test (matched vs
    control prompts)."""
    from moelens.analysis.causal import trigger_job
    from moelens.analysis.causal.command import TriggerConfig
    from moelens.rundir import atomic_write_json

    records = unit_records(labels_dir / "interpret")
    cases = make_cases(records)
    labelled = sum(1 for r in records if r["status"] == "ok")
    experts = len({(c["layer"], c["expert"]) for c in cases})
    if not cases:
        return {"labelled": labelled, "experts_with_cases": 0, "cases": 0,
                "note": "no labelled expert gave a printable trigger and target"}
    atomic_write_json(stage / "cases.json", cases)
    res = trigger_job.run(TriggerConfig(model=str(model_dir), cases=stage / "cases.json",
                                        out=stage / "trigger", threads=cfg.lm.cpu_threads or None,
                                        quiet=cfg.quiet))
    summ = read_json(stage / "trigger" / "summary.json")
    return {"labelled": labelled, "experts_with_cases": experts, "cases": summ["cases"],
            "rejected": summ["rejected"], "rank_table": summ["rank_table"],
            "skipped": res.skipped}


def specialize(stage: Path, model_dir: Path, store: Path, files: list[Path], cfg: Any
               ) -> dict[str, Any]:
    """Input and output specialization per layer (JSD minus the small-sample null), routing
    statistics and domain shares."""
    from moelens.analysis.specialization.command import SpecializeConfig
    from moelens.analysis.specialization.run import specialize as run

    run(SpecializeConfig(store=store, model=str(model_dir), ks=list(cfg.experts.spec_ks),
                         domains=files, seed=cfg.seed, threads=cfg.lm.cpu_threads or None,
                         out=stage / "specialize", quiet=cfg.quiet))
    summ = read_json(stage / "specialize" / "summary.json")
    return {"mean_specialization": summ.get("mean_specialization")}


def balanced_corpus(out: Path, files: list[Path], model_dir: Path, tokens: int, seed: int
                    ) -> dict[str, int]:
    """A corpus with about ``tokens / len(files)`` tokens of every domain (seeded document
    choice), written to ``out`` as .jsonl records with their ``domain``; returns the tokens per
    domain. The knowledge control cuts its corpus after its token budget, so the domain files one
    after the other would give it only the first domain's text."""
    import numpy as np
    from tokenizers import Tokenizer

    from moelens.rundir import atomic_write_text

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    share, lines, counts = tokens // len(files), [], {}
    for i, path in enumerate(files):
        # split at "\n" only: a record's text may hold U+2028/U+2029, where splitlines cuts
        docs = [json.loads(x)["text"] for x in path.read_text(encoding="utf-8").split("\n")
                if x.strip()]
        order = np.random.default_rng([seed, i]).permutation(len(docs))
        n = 0
        for j in order:
            if n >= share:
                break
            ids = tok.encode(docs[j], add_special_tokens=False).ids
            text = docs[j] if n + len(ids) <= share else tok.decode(ids[:share - n])
            lines.append(json.dumps({"text": text, "domain": path.stem}))
            n += min(len(ids), share - n)
        counts[path.stem] = n
    atomic_write_text(out, "\n".join(lines) + "\n")
    return counts


def knowledge(stage: Path, model_dir: Path, files: list[Path], cfg: Any) -> dict[str, Any]:
    """Knowledge control by domain: ablate each domain's top-n experts (by routing share) and,
    as the control, n random experts; Δ loss on the domain and on the others. Every domain gets
    an equal share of the token budget."""
    from moelens.analysis.causal import knowledge_job
    from moelens.analysis.causal.command import KnowledgeConfig

    e = cfg.experts
    corpus = stage / "corpus.jsonl"
    counts = balanced_corpus(corpus, files, model_dir, e.knowledge_tokens, cfg.seed)
    n_max = cfg.lm.n_layer * cfg.lm.num_experts
    knowledge_job.run(KnowledgeConfig(
        model=str(model_dir), corpus=[corpus], ctx=cfg.corpus.capture_ctx,
        ns=[n for n in e.knowledge_ns if n <= n_max],
        controls=e.knowledge_controls, seed=cfg.seed, threads=cfg.lm.cpu_threads or None,
        out=stage / "knowledge", quiet=cfg.quiet))
    return {"tokens_per_domain": counts,
            "curves": read_json(stage / "knowledge" / "summary.json")["curves"]}
