"""``moelens probe``: k-sparse probing of a store's units against token concepts.

Thin: the typed config and its checks, then :func:`moelens.analysis.probing.run.probe` does the
work (open and check the store, sample each concept's tokens, fit every (concept, layer, unit, k),
write the table, the summary and figures into a run stage) and this prints where results went.
``--compare A B ...`` instead compares finished probe runs over the concepts they all have
(:mod:`moelens.analysis.probing.compare`; no store needed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from moelens.errors import ConfigError

VALID_KS = (1, 2, 4, 8, 16, 32, 64)


@dataclass
class ProbeConfig:
    store: Path | None = None
    """activation store directory to probe (not needed with --compare)"""
    concepts: list[str] = field(default_factory=lambda: ["all"])
    """concepts: 'all', 'group:NAME' or a group name, concept names, or user concepts such as 'regex:...'"""
    concept_variant: Literal["fixed", "paper"] = "fixed"
    """concept definitions: 'fixed' (defects corrected) or 'paper' (exactly as published)"""
    out: Path = Path("runs/probe")
    """output directory (a run stage: config.json, probe.parquet/csv, summary.json, figures/)"""
    model: str = ""
    """model name for the table (default: the store manifest's model id)"""
    layers: list[int] = field(default_factory=list)
    """layers to probe (default: every layer in the store)"""
    spaces: list[str] = field(default_factory=lambda: ["expert", "shared", "ffn"])
    """unit spaces to probe where the store has them (expert, shared, ffn)"""
    semantics: Literal["routed", "gated", "zero_filled"] = "routed"
    """routing semantics of expert neurons: routed = only the tokens routed to the expert"""
    ks: list[int] = field(default_factory=lambda: list(VALID_KS))
    """numbers of neurons per probe: powers of two from 1 to 64"""
    fitter: Literal["fast", "reference"] = "fast"
    """fast: batched exact Newton in torch (default); reference: the paper's sklearn saga, 500 iterations"""
    device: str = "cpu"
    """torch device of the fast fitter (cpu, cuda, cuda:1, ...)"""
    seeds: list[int] = field(default_factory=lambda: [42, 43, 44])
    """seeds: each one resamples the concept tokens, the splits and the controls"""
    budget: int = 5000
    """concept sampling budget passed to the registry's sample_examples"""
    min_samples: int = 50
    """minimum positives and minimum negatives for a unit to be probed"""
    baselines: bool = True
    """dense baselines beside each expert: same tokens, and size-matched random tokens"""
    baseline_space: Literal["auto", "ffn", "resid", "none"] = "auto"
    """dense space for the baselines (auto: ffn, else resid, where the store has it)"""
    null: bool = True
    """shuffled-label null: each expert probed again with its labels permuted"""
    bootstrap: int = 1000
    """bootstrap resamples (over concepts) for the 95 percent intervals"""
    figures: bool = True
    """draw figures (PNG and SVG) into OUT/figures"""
    dense_store: Path | None = None
    """a dense model's store: its ffn units probed on random token subsets the size of each expert dataset (same concepts and seeds; layers matched by relative depth)"""
    compare: list[Path] = field(default_factory=list)
    """finished probe runs to compare (instead of probing a store): headline table, figures and compare.json, every run averaged over the concepts all of them have"""
    overwrite: bool = False
    """redo a finished run in OUT"""
    quiet: bool = False
    """no progress output"""

    def __post_init__(self) -> None:
        bad = [k for k in self.ks if k not in VALID_KS]
        if bad or not self.ks:
            raise ConfigError(f"ks must be powers of two from 1 to 64 (1 2 4 8 16 32 64); got {bad or 'none'}")
        self.ks = sorted(set(self.ks))
        if not self.seeds:
            raise ConfigError("give at least one seed with --seeds")
        if self.store is None and not self.compare:
            raise ConfigError("give --store DIR to probe, or --compare RUN_DIR ... to draw figures")
        unknown = [s for s in self.spaces if s not in ("expert", "shared", "ffn")]
        if unknown or not self.spaces:
            raise ConfigError(f"spaces must be among expert, shared, ffn; got {unknown or 'none'}")
        if self.min_samples < 4:
            raise ConfigError(f"min_samples must be at least 4, got {self.min_samples}")
        if self.budget < 1 or self.bootstrap < 0:
            raise ConfigError("budget must be positive and bootstrap non-negative")
        if not self.concepts:
            raise ConfigError("give at least one concept with --concepts (or 'all')")


def run(cfg: ProbeConfig) -> int:
    """Probe a store, or compare finished runs; print the headline and where results went."""
    from moelens.analysis.probing import compare, figures, headline
    from moelens.analysis.probing import run as probing

    if cfg.compare:
        cmp = compare.compare(cfg.compare, n_boot=cfg.bootstrap)
        rows = compare.headline_rows(cmp)
        paths = figures.compare_runs(cmp, Path(cfg.out))
        where = compare.write(cmp, Path(cfg.out), rows)
        print(f"probe: compared {len(cmp.runs)} runs; {cmp.note()}")
        ks = sorted({int(k) for rs in rows.values() for r in rs for k in r["values"]})
        for name, rs in rows.items():
            print(f"probe: {name}, mean F1")
            for line in headline.table_lines(rs, ks):
                print(line)
        print(f"probe: wrote {len(paths)} comparison figures and {where.name} to {cfg.out}")
        return 0
    res = probing.probe(cfg)
    if res.rank != 0:
        return 0
    if res.skipped:
        print(f"probe: {cfg.out} is already done; pass --overwrite to redo it")
        return 0
    if cfg.quiet:
        return 0
    summ = res.summary
    print(f"probe: {res.rows} rows -> {res.path}")
    print(f"probe: mean F1 over {summ['n_concepts']} concepts (95% intervals in summary.json); "
          "read the validation-selected test F1, the paper protocol's number is biased upward")
    for line in headline.table_lines(summ["headline_table"], summ["ks"]):
        print(line)
    if summ["fits_not_converged"] or summ["fitter"] == "saga":
        print(f"probe: {summ['fits_not_converged']} of {summ['units_fitted']} {summ['fitter']} "
              f"fits did not converge (relative gradient above {summ['convergence_tol']:g} "
              "where the solver stopped), so their F1 is not the optimum's; see the "
              "'converged' column (--fitter fast reaches the optimum)")
    for dup, canon in summ.get("duplicates", {}).items():
        print(f"probe: {dup} labels the same tokens as {canon}: its rows are in the table, "
              "but averages count the concept once")
    if res.starved:
        print(f"probe: no unit had {cfg.min_samples} positives and negatives for "
              f"{len(res.starved)} concept(s), left out of the averages: {', '.join(res.starved)}")
    return 0
