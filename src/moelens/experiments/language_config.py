"""Settings of ``moelens experiment language`` (the ``--help`` text); presets ``language-small``
(the default: sized for one session on a 2-core CPU) and ``language-tiny`` (the tests')."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from moelens.errors import ConfigError
from moelens.experiments.chess_config import SaeSettings


@dataclass
class CorpusSettings:
    """The offline corpora: training text, the captured analysis text and the concept domains."""

    kinds: list[str] = field(default_factory=lambda: ["prose", "code", "latex"])
    """corpus kinds (domains): prose, code, latex (an empty kind, e.g. LaTeX without its Debian
    packages, is left out and reported)"""
    sources: list[str] = field(default_factory=list)
    """corpus sources (empty: every source of 'moelens data corpora')"""
    install: bool = False
    """let 'moelens data corpora' apt-get install missing Debian packages"""
    system_root: Path = Path("/")
    """root of the system tree holding the Debian packages' files (another tree: a copy of
    those files, or a test's fake tree)"""
    max_docs_per_source: int = 300
    """documents per corpus source"""
    vocab_size: int = 4096
    """BPE vocabulary trained on the corpora"""
    capture_tokens: int = 30000
    """tokens of the corpora (shuffled documents) captured from every model for the analyses"""
    capture_ctx: int = 128
    """context length of the captures"""


@dataclass
class LMSettings:
    """Sizes and training of every model (equal budgets; equal active FFN parameters: the dense
    width equals top_k x expert width for every MoE)."""

    n_layer: int = 4
    """transformer layers"""
    n_head: int = 4
    """attention heads"""
    n_embd: int = 128
    """residual stream width"""
    active_width: int = 512
    """active FFN hidden width per token: the dense MLP's width, and top_k x expert_width of
    every MoE (top-1: experts of this width; top-4: a quarter of it)"""
    num_experts: int = 8
    """experts per MoE layer"""
    top_k: int = 2
    """experts per token of the Switch and MoE-X models (the paper's top-2)"""
    top_ks: list[int] = field(default_factory=lambda: [1, 2, 4])
    """top-k of the routing-sparsity series (Switch-style MoEs; the top_k one is the Switch model)"""
    ctx: int = 128
    """context length"""
    batch_size: int = 16
    """examples per step"""
    max_iters: int = 300
    """steps of every model"""
    lr: float = 3e-3
    """peak learning rate"""
    min_lr: float = 3e-4
    """final learning rate of the cosine decay"""
    warmup_iters: int = 20
    """warmup steps"""
    eval_iters: int = 8
    """validation batches logged during training"""
    ckpt_interval: int = 25
    """steps between checkpoints (what a killed experiment resumes from)"""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """device of training"""
    dtype: Literal["auto", "fp32", "bf16"] = "auto"
    """compute dtype of training"""
    cpu_threads: int = 1
    """torch CPU threads of every stage (0: torch's default)"""
    seed: int = 0
    """seed of every model's initialisation and batches"""
    extra_seeds: list[int] = field(default_factory=list)
    """further training seeds of the three main models (dense GELU, Switch, MoE-X): each is
    trained, captured, auto-interpreted (rules, Fig. 8) and probed again, and the claim tables
    give the mean and sd over seeds; the top-k series and the SAE keep the one seed above"""


@dataclass
class NeuronSettings:
    """MoE-X Fig. 8: auto-interpretation of random single neurons of the middle layer (dense MLP
    neurons, SAE latents, MoE-X wide-view neurons, Switch expert neurons)."""

    n_neurons: int = 200
    """random neurons per model (seeded; the paper: 1000)"""
    alive_only: bool = True
    """draw the random neurons among those that fire somewhere in the capture (a dead unit has
    nothing to explain; false: among all, dead ones then count as skipped)"""
    n_explain: int = 40
    """activating windows shown to the explainer (stratified over deciles)"""
    n_test: int = 50
    """held-out activating windows per neuron for detection and fuzzing"""
    n_negative: int = 50
    """non-activating windows per neuron"""
    min_examples: int = 20
    """neurons with fewer activating windows are counted and skipped"""
    window: int = 32
    """tokens per window"""
    smollm2: bool = False
    """also explain and judge with SmolLM2-135M (the 'hf' backend; slow on a CPU)"""
    smollm2_neurons: int = 20
    """neurons per model given to SmolLM2 (the first of the random draw)"""
    smollm2_n_explain: int = 10
    """activating windows shown to SmolLM2 (and to the rules explainer it is compared with in
    that stage): a 40-window prompt is ~3,500 tokens, minutes per neuron on a busy CPU core"""
    smollm2_n_test: int = 3
    """held-out activating windows per neuron in the SmolLM2 stage (every window is a SmolLM2
    forward per scorer, 2-3 s on a busy CPU core, so far fewer than the rules stages')"""
    smollm2_n_negative: int = 3
    """non-activating windows per neuron in the SmolLM2 stage"""


@dataclass
class ProbeSettings:
    """The Expert Strikes Back §2: k-sparse probing of the 58 concepts (every layer, every
    expert), with its controls."""

    concepts: list[str] = field(default_factory=lambda: ["pos", "latex", "code", "text"])
    """concept groups or names to probe (the paper's 58: pos latex code text; 'all' adds the
    chess concepts)"""
    ks: list[int] = field(default_factory=lambda: [1, 64])
    """numbers of neurons per probe (the paper's headline: 1 and 64)"""
    seeds: list[int] = field(default_factory=lambda: [42])
    """probing seeds (each resamples concept tokens, splits and controls)"""
    budget: int = 5000
    """concept sampling budget (labelled tokens per concept)"""
    min_samples: int = 50
    """minimum positives and negatives for a unit to be probed"""
    bootstrap: int = 1000
    """bootstrap resamples over concepts for the 95% intervals"""


@dataclass
class ExpertSettings:
    """The Expert Strikes Back §3-5 on every MoE: expert labels, trigger cases, specialization,
    knowledge control."""

    n_explain: int = 20
    """top windows shown to the explainer (the paper: ranks 1-20)"""
    n_test: int = 10
    """held-out top windows the binary scorer judges (the paper: ranks 21-30)"""
    n_negative: int = 10
    """negative windows per expert (drawn per expert, from the other experts' pools)"""
    min_examples: int = 15
    """experts with fewer activating windows are counted and skipped"""
    smollm2: bool = False
    """also label and judge every expert with SmolLM2-135M (slow on a CPU)"""
    trigger: bool = True
    """generate trigger -> target cases from the labels and test them"""
    spec_ks: list[int] = field(default_factory=lambda: [10, 50])
    """cluster counts of the unembedding for specialization"""
    knowledge_ns: list[int] = field(default_factory=lambda: [1, 2, 4])
    """numbers of top experts of a domain ablated together"""
    knowledge_controls: int = 3
    """random-expert draws per n (the control)"""
    knowledge_tokens: int = 8000
    """corpus tokens of the knowledge control"""


@dataclass
class LanguageExperimentConfig:
    """Both papers' language-side claims at CPU scale: MoE-X Fig. 8, and The Expert Strikes
    Back §2-5, on our own dense, Switch, MoE-X and top-k MoE models."""

    out: Path = Path("runs/language-experiment")
    """run directory: one stage folder per step, summary.json, report/"""
    corpus: CorpusSettings = field(default_factory=CorpusSettings)
    """the corpora"""
    lm: LMSettings = field(default_factory=LMSettings)
    """the models"""
    sae: SaeSettings = field(default_factory=SaeSettings)
    """the SAE on the dense model's MLP at the middle layer"""
    neurons: NeuronSettings = field(default_factory=NeuronSettings)
    """claim 1: neuron auto-interpretation"""
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    """claim 2: k-sparse probing"""
    experts: ExpertSettings = field(default_factory=ExpertSettings)
    """claim 3: experts as the unit"""
    layer: int | None = None
    """layer whose neurons are auto-interpreted and whose MLP the SAE encodes (default:
    n_layer // 2)"""
    seed: int = 0
    """seed of every draw of the analyses (neurons, windows, negatives, nulls, controls)"""
    overwrite: bool = False
    """redo every stage"""
    quiet: bool = False
    """no progress bars"""

    def __post_init__(self) -> None:
        lm = self.lm
        positive = {"lm.n_layer": lm.n_layer, "lm.n_embd": lm.n_embd, "lm.ctx": lm.ctx,
                    "lm.batch_size": lm.batch_size, "lm.max_iters": lm.max_iters,
                    "lm.num_experts": lm.num_experts, "lm.active_width": lm.active_width,
                    "corpus.capture_tokens": self.corpus.capture_tokens,
                    "neurons.n_neurons": self.neurons.n_neurons}
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"--{name} must be at least 1, got {value}")
        if lm.n_embd % lm.n_head:
            raise ConfigError(f"--lm.n_embd {lm.n_embd} is not a multiple of --lm.n_head {lm.n_head}")
        bad = [k for k in set(lm.top_ks) | {lm.top_k} if not 1 <= k <= lm.num_experts]
        if bad:
            raise ConfigError(f"top-k {bad[0]} is not between 1 and --lm.num_experts "
                              f"{lm.num_experts}")
        uneven = [k for k in set(lm.top_ks) | {lm.top_k} if lm.active_width % k]
        if uneven:
            raise ConfigError(f"--lm.active_width {lm.active_width} is not divisible by top-k "
                              f"{uneven[0]} (equal active parameters need expert_width = "
                              "active_width / top_k)")
        unknown = [k for k in self.corpus.kinds if k not in ("prose", "code", "latex")]
        if unknown or not self.corpus.kinds:
            raise ConfigError(f"--corpus.kinds must be among prose, code, latex; got "
                              f"{unknown or 'none'}")
        if not 0 <= self.scored_layer < lm.n_layer:
            raise ConfigError(f"--layer {self.scored_layer} is not a layer of a "
                              f"{lm.n_layer}-layer model")
        if not self.probe.ks or any(k not in (1, 2, 4, 8, 16, 32, 64) for k in self.probe.ks):
            raise ConfigError("--probe.ks must be powers of two from 1 to 64")
        if not self.probe.seeds:
            raise ConfigError("--probe.seeds needs at least one seed")

    @property
    def scored_layer(self) -> int:
        """The layer of the neuron auto-interpretation and the SAE."""
        return self.lm.n_layer // 2 if self.layer is None else self.layer
