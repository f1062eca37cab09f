"""``moelens causal ablate | knowledge | trigger | cases``: the typed configs and thin ``run`` functions.

The work is in the ``*_job`` modules; these check the flags and print where results went.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from moelens.analysis.autointerp.command import HFBackend, LLMBackend
from moelens.capture.placed import PlacementFlags
from moelens.errors import ConfigError


@dataclass
class _Placed(PlacementFlags):
    """Where the model runs, with float32 as the default dtype on every device."""

    model_dtype: Literal["default", "float32", "bfloat16", "float16", "auto"] = "float32"
    """dtype the model runs in: float32 on every device by default, since one expert's effect
    can be as small as bfloat16 rounding noise; bfloat16 halves the memory of a large model
    (default = bfloat16 on a GPU, float32 on the CPU; auto = the checkpoint's own)"""


@dataclass
class _ModelCorpus(_Placed):
    model: str = ""
    """hub id or local directory of the model"""
    corpus: list[Path] = field(default_factory=list)
    """.txt (one document) or .jsonl (one per record) files; a document's domain is its record's
    'domain' field, else its file's name (moelens data corpora writes prose/code/latex.jsonl)"""
    text_field: str = "text"
    """field holding the text in .jsonl files"""
    ctx: int = 128
    """context length: documents are cut into windows of at most this many tokens"""
    batch_size: int = 8
    """windows per forward pass"""
    tokens: int | None = None
    """use at most this many tokens of the corpus, split equally between its domains (default: all
    of it)"""
    layers: list[int] = field(default_factory=list)
    """MoE layers to intervene on (default: every MoE layer)"""
    threads: int | None = None
    """torch CPU threads (default: torch's own)"""
    figures: bool = True
    """draw figures (PNG) into OUT/figures"""
    overwrite: bool = False
    """redo a finished run in OUT"""
    quiet: bool = False
    """no progress bar"""

    def _check(self) -> None:
        if not self.model:
            raise ConfigError("--model is required: a hub id or a local model directory")
        if not self.corpus:
            raise ConfigError("give the corpus with --corpus FILE ... (.txt or .jsonl)")
        if self.ctx < 2 or self.batch_size < 1:
            raise ConfigError("--ctx must be at least 2 and --batch_size at least 1")
        if self.tokens is not None and self.tokens < 2:
            raise ConfigError(f"--tokens must be at least 2, got {self.tokens}")


@dataclass
class AblateConfig(_ModelCorpus):
    experts: list[str] = field(default_factory=lambda: ["all"])
    """experts to ablate at each layer: 'all' or expert ids"""
    ablation: Literal["zero", "remove", "mean"] = "zero"
    """zero: slot weight 0, no renormalising; remove: slot removed and the rest renormalised;
    mean: output replaced by the expert's mean output over the corpus"""
    group_size: int = 8
    """experts of a layer stacked into one forward (and one unit of work for torchrun)"""
    tail_tokens: int = 4096
    """at most this many tokens in one stacked forward"""
    concepts: list[str] = field(default_factory=list)
    """concepts whose tokens get their own rows (Δ loss on the tokens carrying each): concept
    names, group names (e.g. latex), 'all', or user concepts such as 'regex:...'; needs a fast
    tokenizer (default: none)"""
    concept_variant: Literal["fixed", "paper"] = "fixed"
    """concept definitions: 'fixed' (defects corrected) or 'paper' (exactly as published)"""
    out: Path = Path("runs/causal/ablate")
    """output directory (a run stage: config.json, ablate.csv, summary.json, figures/)"""

    def __post_init__(self) -> None:
        self._check()
        if not self.experts:
            raise ConfigError("give --experts all or expert ids")
        if self.group_size < 1 or self.tail_tokens < 1:
            raise ConfigError("--group_size and --tail_tokens must be at least 1")


@dataclass
class KnowledgeConfig(_ModelCorpus):
    domains: list[str] = field(default_factory=list)
    """domains whose experts are ablated in turn (default: every domain of the corpus)"""
    rank: Literal["routing", "attribution"] = "routing"
    """how experts are ranked for a domain: routing share on it minus the others' mean, or an
    ablation sweep's Δ loss on it minus the others' mean"""
    ns: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    """numbers of top experts ablated together"""
    controls: int = 5
    """random draws of n experts per n (the control)"""
    ablation: Literal["zero", "remove"] = "zero"
    """zero: slot weight 0; remove: slot removed and the rest renormalised"""
    group_size: int = 8
    """experts stacked per forward in the attribution sweep"""
    seed: int = 0
    """seed of the random control's draws"""
    out: Path = Path("runs/causal/knowledge")
    """output directory (knowledge.csv, summary.json, figures/)"""

    def __post_init__(self) -> None:
        self._check()
        if not self.ns or min(self.ns) < 1:
            raise ConfigError("--ns must be positive numbers of experts")
        self.ns = sorted(set(self.ns))
        if self.controls < 0 or self.group_size < 1:
            raise ConfigError("--controls must be non-negative and --group_size at least 1")


@dataclass
class TriggerConfig(_Placed):
    model: str = ""
    """hub id or local directory of the model"""
    cases: Path | None = None
    """JSON file: a list of {"text", "trigger", "target", "layer", "expert"} (optional "id",
    "leading_space": false for a target written without a space before it)"""
    threads: int | None = None
    """torch CPU threads (default: torch's own)"""
    out: Path = Path("runs/causal/trigger")
    """output directory (trigger.csv, rank_table.csv, summary.json, figures/)"""
    figures: bool = True
    """draw the rank-table figure"""
    overwrite: bool = False
    """redo a finished run in OUT"""
    quiet: bool = False
    """print nothing but errors"""

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("--model is required: a hub id or a local model directory")
        if self.cases is None:
            raise ConfigError("--cases is required: a JSON file of trigger/target test cases")


@dataclass
class CasesConfig:
    labels: Path | None = None
    """output directory of a finished 'moelens interpret' run (expert level): its labels"""
    model: str = ""
    """the model the cases are for (its tokenizer checks each target); a local directory or hub id"""
    backend: Literal["llm", "hf"] = "llm"
    """who writes the cases: llm (an OpenAI-compatible endpoint, --llm.*) or hf (a local model, --hf.*)"""
    llm: LLMBackend = field(default_factory=LLMBackend)
    """OpenAI-compatible endpoint settings"""
    hf: HFBackend = field(default_factory=HFBackend)
    """local model settings"""
    n_cases: int = 5
    """cases asked for per labelled expert (the answer may take 60 tokens per case, or the backend's
    --llm.max_tokens / --hf.max_new_tokens when larger)"""
    examples: int = 3
    """activating windows of each expert shown in its prompt (drawn with --seed)"""
    cache_dir: Path | None = None
    """response cache (default: OUT/cache; kept by --overwrite)"""
    seed: int = 0
    """seed of the windows shown"""
    out: Path = Path("runs/causal/cases")
    """output directory: cases.json (for 'moelens causal trigger --cases'), report.json"""
    overwrite: bool = False
    """redo a finished run in OUT (the response cache is kept)"""
    quiet: bool = False
    """print nothing but errors"""

    def __post_init__(self) -> None:
        if self.labels is None:
            raise ConfigError("--labels is required: the output directory of a 'moelens interpret' run")
        if not self.model:
            raise ConfigError("--model is required: the model the cases are for (its tokenizer checks targets)")
        if self.backend == "llm" and not self.llm.model:
            raise ConfigError("the llm backend needs --llm.model (the model name the endpoint serves)")
        if self.n_cases < 1 or self.examples < 0:
            raise ConfigError("--n_cases must be at least 1 and --examples non-negative")


def _nothing_more(res: Any, command: str, quiet: bool) -> bool:
    """Whether the command's report ends here: ``--quiet``, or a stage finished before (which is
    said, with how to redo it)."""
    if quiet:
        return True
    if res.skipped:
        print(f"causal {command}: {res.path} is already done; pass --overwrite to redo it")
        return True
    return False


def run_ablate(cfg: AblateConfig) -> int:
    from moelens.analysis.causal.ablate_job import ablate

    res = ablate(cfg)
    if res.rank != 0 or _nothing_more(res, "ablate", cfg.quiet):
        return 0
    s = res.summary
    print(f"causal ablate: {s['cells']} experts ({s['untested']} never routed: untested) over "
          f"{s['tokens']} tokens -> {res.path / 'ablate.csv'}")
    if s["concepts"]:
        print("  concept rows (tokens scored): " + ", ".join(f"{k} ({v})" for k, v in s["concepts"].items()))
    for r in s["top"][:5]:
        print(f"  layer {r['layer']} expert {r['expert']}: Δ loss {r['delta_loss']:+.4f} "
              f"(KL {r['kl']:.4f}, {r['tokens_routed']} tokens routed)")
    return 0


def run_knowledge(cfg: KnowledgeConfig) -> int:
    from moelens.analysis.causal.knowledge_job import run

    res = run(cfg)
    if _nothing_more(res, "knowledge", cfg.quiet):
        return 0
    print(f"causal knowledge: Δ loss with the top-n experts of a domain ablated (random n in brackets) "
          f"-> {res.path / 'knowledge.csv'}")
    for s in res.summary:
        print(f"  {s['target_domain']} n={s['n']}: on it {s['ranked_delta_target']:+.3f} "
              f"({s['random_delta_target']:+.3f}), on the others {s['ranked_delta_others']:+.3f} "
              f"({s['random_delta_others']:+.3f})")
    return 0


def run_trigger(cfg: TriggerConfig) -> int:
    from moelens.analysis.causal.trigger_job import run

    res = run(cfg)
    if _nothing_more(res, "trigger", cfg.quiet):
        return 0
    print(f"causal trigger: {res.n_cases} cases tested, {len(res.rejected)} rejected (trigger not in "
          f"text, listed in summary.json) -> {res.path / 'trigger.csv'}")
    for t in res.table:
        print(f"  {t['kind']}: n={t['n']}, rank 1 {t['rank 1']:.2f}, rank 2-3 {t['rank 2-3']:.2f}, "
              f"rest {t['rest']:.2f}, not routed {t['not routed']:.2f}")
    return 0


def run_cases(cfg: CasesConfig) -> int:
    from moelens.analysis.causal.cases_job import run

    res = run(cfg)
    if _nothing_more(res, "cases", cfg.quiet):
        return 0
    r = res.report
    print(f"causal cases: {r['cases']} cases for {r['experts']} labelled experts ({r['rejected']} rejected, "
          f"{r['failures']} answers unusable; see report.json) -> {res.path / 'cases.json'}")
    print(f"  test them: moelens causal trigger --model {cfg.model} --cases {res.path / 'cases.json'}")
    return 0
