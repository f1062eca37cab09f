"""Settings of ``moelens experiment chess`` (the ``--help`` text); presets ``chess-small`` (CPU,
the default) and ``chess-paper`` (the paper's 8-layer, 512-d configuration, for a GPU)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from moelens.errors import ConfigError


@dataclass
class GamesSettings:
    """The chess games: generated, split, packed into blocks."""

    n_games: int = 2000
    """games to generate (0: only the imported ones); eval_games / (n_games + eval_games) of all
    games are held out"""
    import_files: list[Path] = field(default_factory=list)
    """game files to import as well: .pgn files, or transcript files with one ';1.e4 e5 ...'
    game per line (e.g. real games from lichess)"""
    eval_games: int = 500
    """held-out games: validation loss, legal-move rate and the board metrics (half fit the unit
    labels, half test them)"""
    random_games: int = 2000
    """random-move games for the board probe's control model"""
    max_plies: int = 70
    """move cap of generated games (only the first max_chars characters are scored)"""
    block_size: int = 256
    """characters per training block (each starts with ';')"""
    player: Literal["auto", "stockfish", "builtin"] = "auto"
    """who plays the games: Stockfish when found (auto), or the built-in player"""
    workers: int = 0
    """processes generating games (0: one per CPU)"""
    seed: int = 0
    """seed of the games"""


@dataclass
class ModelSettings:
    """Sizes shared by every model (matched activated parameters: ffn_width = top_k x
    expert_width, as the paper's 4096 = 2 x 2048)."""

    n_layer: int = 4
    """transformer layers"""
    n_head: int = 4
    """attention heads"""
    n_embd: int = 128
    """residual stream width"""
    ffn_width: int = 512
    """hidden width of the dense MLPs"""
    num_experts: int = 8
    """experts per MoE layer"""
    top_k: int = 2
    """experts per token"""
    expert_width: int = 256
    """hidden width of each expert"""
    layer: int | None = None
    """layer whose units are scored (default: n_layer // 2, a middle layer)"""
    temperature: float = 0.1
    """router temperature of the MoE-X temperature-ablation model (the others use 1.0)"""


@dataclass
class TrainSettings:
    """Training, the same for every model (the budget is max_iters x batch_size x ctx tokens)."""

    ctx: int = 255
    """context length (block_size - 1: every example starts at a game start)"""
    batch_size: int = 16
    """examples per step"""
    max_iters: int = 200
    """steps of every model trained from scratch"""
    continue_iters: int = 100
    """further steps of the dense model's continued training and of the upcycled MoE-X"""
    lr: float = 3e-3
    """peak learning rate"""
    min_lr: float = 3e-4
    """final learning rate of the cosine decay"""
    warmup_iters: int = 20
    """warmup steps"""
    eval_iters: int = 8
    """validation batches logged during training"""
    ckpt_interval: int = 20
    """steps between checkpoints (what a killed experiment resumes from)"""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """device of training and evaluation"""
    dtype: Literal["auto", "fp32", "bf16"] = "auto"
    """compute dtype"""
    cpu_threads: int = 1
    """torch CPU threads of training and evaluation (0: torch's default); on a machine busy with
    other work, 1 thread is several times faster than 2 (idle OpenMP threads spin)"""


@dataclass
class ScoreSettings:
    """Evaluation of each model."""

    max_positions: int = 20
    """scored positions per game (the "." characters)"""
    max_chars: int = 256
    """only positions within the first max_chars characters"""
    labelling: Literal["corrected", "paper"] = "corrected"
    """unit labelling for reconstruction (both are reported)"""
    legal_prompts: int = 200
    """prompts of the legal-move rate"""
    stats_games: int = 100
    """held-out games on which router entropy, top-1 weight and L0 are measured"""
    probe_steps: int = 300
    """full-batch Adam steps of the residual board probe (300 converges at chess-small sizes:
    test loss per square 0.888 after 50 steps, 0.815 after 300, 0.815 after 1,000)"""


@dataclass
class SaeSettings:
    """The SAE baseline: a TopK SAE on the first dense GELU model's MLP at the scored layer."""

    enabled: bool = True
    """train and score the SAE (needs the dense_gelu model)"""
    expansion: int = 8
    """latents per MLP unit"""
    k: int = 32
    """active latents per token (Karvonen et al.'s SAEs have L0 of about 30)"""
    steps: int = 1000
    """optimizer steps"""
    batch_size: int = 512
    """tokens per step"""


@dataclass
class LanguageSettings:
    """The language side: dense GELU, Switch and MoE-X on the offline prose + code corpora."""

    enabled: bool = True
    """train and evaluate the language models"""
    install: bool = False
    """let 'moelens data corpora' apt-get install missing Debian packages of the corpora"""
    max_docs_per_source: int = 300
    """documents per corpus source"""
    sources: list[str] = field(default_factory=list)
    """corpus sources to use (empty: all prose and code sources of 'moelens data corpora')"""
    vocab_size: int = 4096
    """BPE vocabulary trained on the corpora"""
    n_layer: int = 4
    """transformer layers"""
    n_embd: int = 128
    """residual stream width"""
    ctx: int = 128
    """context length"""
    batch_size: int = 16
    """examples per step"""
    max_iters: int = 200
    """steps of each language model"""


@dataclass
class ChessExperimentConfig:
    """The MoE-X chess comparison (Tables 1, 3, 4) and its language side (Table 2) at one scale."""

    out: Path = Path("runs/chess-experiment")
    """run directory: one stage folder per step, summary.json, report/"""
    games: GamesSettings = field(default_factory=GamesSettings)
    """the chess games"""
    model: ModelSettings = field(default_factory=ModelSettings)
    """model sizes"""
    train: TrainSettings = field(default_factory=TrainSettings)
    """training"""
    score: ScoreSettings = field(default_factory=ScoreSettings)
    """evaluation"""
    sae: SaeSettings = field(default_factory=SaeSettings)
    """the SAE baseline"""
    language: LanguageSettings = field(default_factory=LanguageSettings)
    """the language side"""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """seeds of dense GELU, Switch and MoE-X (the other models use the first)"""
    models: list[str] = field(default_factory=list)
    """train only these model kinds (default: all; see 'moelens experiment chess --help')"""
    overwrite: bool = False
    """redo every stage"""
    quiet: bool = False
    """no progress bars"""

    def __post_init__(self) -> None:
        if self.games.n_games < 0 or (self.games.n_games == 0 and not self.games.import_files):
            raise ConfigError("no games: set --games.n_games above 0 or give --games.import_files")
        positive = {"games.eval_games": self.games.eval_games,
                    "games.random_games": self.games.random_games,
                    "train.max_iters": self.train.max_iters,
                    "train.batch_size": self.train.batch_size,
                    "train.ctx": self.train.ctx, "model.n_layer": self.model.n_layer}
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"--{name} must be at least 1, got {value}")
        if self.games.eval_games < 4:
            raise ConfigError("--games.eval_games must be at least 4 (half fit, half test)")
        if self.train.ctx >= self.games.block_size:
            raise ConfigError(f"--train.ctx {self.train.ctx} must be below --games.block_size "
                              f"{self.games.block_size}")
        if self.score.max_chars > self.train.ctx + 1:
            raise ConfigError(f"--score.max_chars {self.score.max_chars} is more than the "
                              f"{self.train.ctx + 1} positions the models are trained on; lower "
                              "it or raise --train.ctx")
        layer = self.scored_layer
        if not 0 <= layer < self.model.n_layer:
            raise ConfigError(f"--model.layer {layer} is not a layer of a "
                              f"{self.model.n_layer}-layer model")
        if not self.seeds:
            raise ConfigError("--seeds needs at least one seed")
        if self.model.temperature <= 0:
            raise ConfigError("--model.temperature must be positive")
        from moelens.experiments.chess_models import KINDS

        unknown = [m for m in self.models if m not in KINDS]
        if unknown:
            raise ConfigError(f"unknown model kind {unknown[0]!r}; choose from {', '.join(KINDS)}")

    @property
    def scored_layer(self) -> int:
        """The layer whose units are scored."""
        return self.model.n_layer // 2 if self.model.layer is None else self.model.layer
