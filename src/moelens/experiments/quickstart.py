"""``moelens quickstart``: the whole road on chess, in one resumable command.

generate games -> train a dense GELU model, a Switch MoE and an MoE-X of matched activated size
-> their legal-move rate -> capture each on held-out games -> k-sparse probing on the chess
concepts (MoE vs dense, with the controls) -> board-state coverage and reconstruction of every
model's units -> auto-interpretation of the experts (offline rules explainer) -> specialization
and routing statistics of the MoEs -> the HTML report, each a stage of ``runs/quickstart/`` (see
:mod:`moelens.experiments.pipeline`: a rerun skips finished stages and resumes the one that was
interrupted). The defaults fit 2 CPU cores in about ten minutes; ``--preset quickstart-gpu``
(and ``quickstart-gpu-large``) scale every part up for a GPU, ``quickstart-tiny`` is the
seconds-long version the tests run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from moelens.errors import ConfigError


@dataclass
class GamesSpec:
    """The chess games: generated offline, split into training blocks and held-out games."""

    n_games: int = 2000
    """games to generate (Stockfish when installed, else the built-in player)"""
    val_fraction: float = 0.1
    """fraction of games held out: validation loss, and the games every analysis captures"""
    max_plies: int = 70
    """half-moves per game at most: the board-state metrics read only a game's first 256
    characters (about 60 plies), so longer games would cost generation time for nothing"""
    block_size: int = 256
    """characters per training block (each starts with ';'; a longer game keeps its opening)"""
    player: Literal["auto", "stockfish", "builtin"] = "auto"
    """who plays: auto = Stockfish when found, else the built-in player"""
    workers: int = 0
    """generation processes (0: one per CPU); does not change the games"""


@dataclass
class ModelsSpec:
    """The three models, matched in activated feed-forward width (dense width = top_k x expert
    width), as in MoE-X's comparison."""

    n_layer: int = 2
    """transformer layers"""
    n_head: int = 4
    """attention heads"""
    n_embd: int = 128
    """residual width d"""
    num_experts: int = 8
    """experts per MoE layer (Switch and MoE-X)"""
    top_k: int = 2
    """experts per token"""
    expert_width: int = 128
    """hidden width of each expert (the dense model's MLP is top_k times this)"""
    models: list[str] = field(default_factory=lambda: ["dense-gelu", "switch", "moex"])
    """model presets to train and compare (any of dense-gelu, dense-relu, switch, moex,
    ablation-relu-softmax, ablation-gelu-sparsity)"""


@dataclass
class TrainSpec:
    """Training of each model (the same data, steps and schedule for all)."""

    max_iters: int = 400
    """optimizer steps per model"""
    ctx: int = 255
    """context: whole blocks (block_size - 1 characters), each a game from its start"""
    batch_size: int = 16
    """blocks per step"""
    lr: float = 3e-3
    """peak learning rate"""
    min_lr: float = 3e-4
    """final learning rate of the cosine schedule"""
    warmup_iters: int = 40
    """warm-up steps"""
    eval_interval: int = 100
    """steps between validation losses (the report's loss curves)"""
    eval_iters: int = 8
    """validation batches per evaluation"""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """device: cuda when available (auto), or forced"""
    dtype: Literal["auto", "fp32", "bf16"] = "auto"
    """compute dtype (auto: bf16 on a GPU that supports it, else fp32)"""


@dataclass
class CaptureSpec:
    """What every analysis reads: each model's units on held-out games."""

    tokens: int = 60000
    """characters of held-out games to capture per model (one character is one token)"""
    ctx: int = 255
    """capture window: games are read from their start, as the models were trained"""


@dataclass
class ProbeSpec:
    """k-sparse probing of the captured units on the chess concepts."""

    seeds: list[int] = field(default_factory=lambda: [42])
    """probing seeds (each resamples concept tokens, splits and controls)"""
    ks: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64])
    """numbers of neurons per probe"""
    budget: int = 3000
    """concept tokens sampled per concept"""
    bootstrap: int = 500
    """bootstrap resamples for the 95% intervals"""
    dense_baseline: bool = True
    """probe the dense model's units on random token subsets the size of each expert's dataset
    (the size-matched dense-model baseline)"""
    device: str = "cpu"
    """torch device of the probe fitter (cpu, cuda)"""


@dataclass
class BoardSpec:
    """Board-state metrics of each model's units on the held-out games, and its legal-move rate."""

    semantics: list[Literal["gated", "zero_filled"]] = field(default_factory=lambda: ["gated"])
    """readings of expert neurons: gated (MoE-X's wide view z, the paper's) and/or zero_filled
    (the raw activation where routed)"""
    max_positions: int = 20
    """scored positions per game (the '.' before White's move, below character 256)"""
    probe: bool = True
    """fit the linear 8x8x13 board probe on the residual stream at the middle layer"""
    probe_steps: int = 300
    """full-batch Adam steps of the board probe (300: where its test loss stops falling at these
    sizes; fewer leave it unconverged and flatten the differences between models)"""
    legal_prompts: int = 200
    """held-out game prefixes whose greedy next move is checked for legality"""


@dataclass
class InterpretSpec:
    """Auto-interpretation of every expert of the MoE models with the offline rules explainer."""

    scorers: list[str] = field(default_factory=lambda: ["detection", "fuzzing", "binary",
                                                         "rules"])
    """scorers of each explanation (the rules judge answers them; see moelens interpret)"""
    window: int = 32
    """characters per window (an expert routed a quarter of the characters fires in nearly
    every long window, which leaves few windows where it is silent)"""
    n_explain: int = 40
    """activating windows the explainer sees"""
    n_test: int = 50
    """held-out activating windows per scorer"""
    n_negative: int = 50
    """non-activating windows per scorer"""
    bootstrap: int = 1000
    """bootstrap resamples of the 95% intervals over experts"""
    lens: bool = True
    """compute each expert's promoted tokens first (moelens lens; shown on the expert cards)"""


@dataclass
class SpecializeSpec:
    """Specialization and routing statistics of the MoE models."""

    ks: list[int] = field(default_factory=list)
    """cluster counts of the unembedding (default: those of 10 50 100 1000 5000 below the
    vocabulary size)"""


@dataclass
class QuickstartConfig:
    """Train dense, Switch and MoE-X chess models and compare what their units represent."""

    out: Path = Path("runs/quickstart")
    """run directory: one folder per stage, summary.json, and report/report.html"""
    games: GamesSpec = field(default_factory=GamesSpec)
    """the chess games"""
    model: ModelsSpec = field(default_factory=ModelsSpec)
    """the models"""
    train: TrainSpec = field(default_factory=TrainSpec)
    """their training"""
    capture: CaptureSpec = field(default_factory=CaptureSpec)
    """capture of each model on held-out games"""
    probe: ProbeSpec = field(default_factory=ProbeSpec)
    """k-sparse probing"""
    board: BoardSpec = field(default_factory=BoardSpec)
    """board-state metrics and legal-move rate"""
    interpret: InterpretSpec = field(default_factory=InterpretSpec)
    """expert auto-interpretation"""
    specialize: SpecializeSpec = field(default_factory=SpecializeSpec)
    """specialization and routing statistics"""
    seed: int = 0
    """seed of the games, the initialisations and the data order"""
    threads: int = 1
    """torch CPU threads of every stage (0: torch's default, one per core). On these small
    models one thread is several times faster than two when other work shares the cores
    (BENCHMARKS.md); on an idle machine 0 uses every core"""
    overwrite: bool = False
    """redo every stage from scratch (otherwise finished stages are skipped)"""
    quiet: bool = False
    """no progress lines or bars; only the final table"""

    def __post_init__(self) -> None:
        from moelens.config import available_presets

        models = self.model.models
        if not models or len(set(models)) != len(models):
            raise ConfigError("give one or more distinct model presets with --model.models")
        known = {p[len("model-"):] for p in available_presets("model")}
        bad = [m for m in models if m not in known]
        if bad:
            raise ConfigError(f"unknown model preset(s) {', '.join(bad)}; choose from "
                              f"{', '.join(sorted(known))}")
        for name, value in [("games.n_games", self.games.n_games),
                            ("train.max_iters", self.train.max_iters),
                            ("capture.tokens", self.capture.tokens),
                            ("model.top_k", self.model.top_k),
                            ("board.max_positions", self.board.max_positions),
                            ("board.legal_prompts", self.board.legal_prompts),
                            ("board.probe_steps", self.board.probe_steps),
                            ("interpret.n_explain", self.interpret.n_explain),
                            ("interpret.n_test", self.interpret.n_test),
                            ("interpret.n_negative", self.interpret.n_negative)]:
            if value < 1:
                raise ConfigError(f"{name}={value} must be at least 1")
        if self.model.top_k > self.model.num_experts:
            raise ConfigError(f"model.top_k={self.model.top_k} exceeds model.num_experts="
                              f"{self.model.num_experts}; route to at most every expert")
        if self.threads < 0:
            raise ConfigError(f"threads={self.threads} must be 0 (torch's default) or more")
        from moelens.analysis.autointerp.command import SCORERS

        bad = [s for s in self.interpret.scorers if s not in SCORERS]
        if bad or not self.interpret.scorers:
            raise ConfigError(f"interpret.scorers: choose one or more of {', '.join(SCORERS)}"
                              + (f" (not {bad[0]!r})" if bad else ""))
        if not self.board.semantics:
            raise ConfigError("board.semantics needs at least one of gated, zero_filled")
        if not 0 < self.games.val_fraction < 1:
            raise ConfigError("games.val_fraction must lie strictly between 0 and 1")


def run(cfg: QuickstartConfig) -> int:
    """Run (or resume) every stage, then print the headline table and where the report is."""
    from moelens.experiments import quickstart_summary as summ
    from moelens.experiments.pipeline import run_pipeline
    from moelens.experiments.quickstart_stages import steps

    import torch

    root = Path(cfg.out)
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        summary = run_pipeline(root, steps(cfg), overwrite=cfg.overwrite, quiet=cfg.quiet,
                               extra=summ.extra(cfg))
        summary = summ.finish(cfg, root, summary)
    finally:
        torch.set_num_threads(threads)
    for line in summ.headline_lines(summary, root):
        print(line)
    return 0
