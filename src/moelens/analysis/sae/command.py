"""``moelens sae train``: train a sparse autoencoder on one dense space of a store.

Thin: the typed config and its checks. :mod:`.plan` opens and checks the store and decides
(skip, resume or start) before torch loads; :mod:`.train` trains (resuming a killed run),
evaluates on held-out tokens and saves the SAE inside the store as a derived unit space, which
every analysis then reads like a captured one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from moelens.errors import ConfigError


@dataclass
class SaeTrainConfig:
    store: Path | None = None
    """activation store directory; the SAE is saved inside it (derived/L<layer>/<name>/)"""
    layer: int | None = None
    """layer of the store whose space the SAE encodes"""
    space: str = "resid"
    """source space: a dense space of the store at that layer (resid, ffn or shared)"""
    name: str = "sae"
    """name of the new unit space: 'sae' or 'sae_<suffix>' (several SAEs per layer need several names)"""
    kind: Literal["topk", "relu_l1"] = "topk"
    """topk: EleutherAI sparsify's TopK SparseCoder with AuxK; relu_l1: ReLU latents with an L1 penalty"""
    latents: int = 0
    """number of latents (0: expansion x the source width)"""
    expansion: int = 8
    """latents per source dimension when --latents is 0"""
    k: int = 32
    """active latents per token (topk only)"""
    l1_coef: float = 0.1
    """L1 coefficient (relu_l1 only), on latents summed per token over the batch's RMS norm"""
    l1_warmup: float = 0.05
    """share of the steps over which the L1 coefficient ramps up linearly from 0 (relu_l1 only)"""
    steps: int = 2000
    """optimizer steps"""
    batch_size: int = 1024
    """tokens per step"""
    lr: float = 0.0
    """Adam learning rate (0: sparsify's rule, 2e-4 / sqrt(latents / 2^14))"""
    lr_warmup: int = 100
    """steps of linear learning-rate warmup"""
    lr_decay: float = 0.2
    """share of the steps, at the end, over which the learning rate decays linearly to 0"""
    auxk_alpha: float = 0.03125
    """weight of the AuxK loss on dead latents (topk only; 0 turns it off)"""
    dead_tokens: int = 100_000
    """training tokens without firing after which a latent counts as dead (for AuxK and the curve)"""
    holdout: float = 0.1
    """share of the store's tokens held out of training for the reported metrics"""
    chunk_tokens: int = 16384
    """tokens read from the store at a time (bounds memory; does not change the result)"""
    ckpt_every: int = 200
    """steps between checkpoints (a killed run resumes from the last one)"""
    log_every: int = 25
    """steps between points of the loss curve"""
    threads: int = 0
    """torch CPU threads while training (0: torch's default); float sums, and so the last bits of
    the result, depend on it"""
    seed: int = 0
    """seed of the initialisation, the held-out split and the batch order"""
    overwrite: bool = False
    """retrain: replace a finished SAE of this name and layer, or an unfinished training"""
    quiet: bool = False
    """no progress bar"""

    def __post_init__(self) -> None:
        if self.store is None:
            raise ConfigError("give the store to train on: moelens sae train --store DIR --layer L")
        if self.layer is None or self.layer < 0:
            raise ConfigError("give a layer of the store with --layer (a non-negative integer)")
        positive = {"expansion": self.expansion, "k": self.k, "steps": self.steps,
                    "batch_size": self.batch_size, "chunk_tokens": self.chunk_tokens,
                    "ckpt_every": self.ckpt_every, "log_every": self.log_every,
                    "dead_tokens": self.dead_tokens}
        if self.threads < 0:
            raise ConfigError(f"--threads must not be negative, got {self.threads}")
        for key, value in positive.items():
            if value < 1:
                raise ConfigError(f"--{key} must be at least 1, got {value}")
        if self.latents < 0 or self.lr < 0 or self.lr_warmup < 0 or self.l1_coef < 0 or self.auxk_alpha < 0:
            raise ConfigError("--latents, --lr, --lr_warmup, --l1_coef and --auxk_alpha must not be negative")
        if not 0.0 < self.holdout < 1.0:
            raise ConfigError(f"--holdout must lie strictly between 0 and 1, got {self.holdout}")
        for key in ("lr_decay", "l1_warmup"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"--{key} must lie in [0, 1], got {getattr(self, key)}")
        if self.latents and self.kind == "topk" and self.k > self.latents:
            raise ConfigError(f"--k {self.k} is larger than --latents {self.latents}; lower k")


def run(cfg: SaeTrainConfig) -> int:
    """Train (or resume, or skip a finished) SAE and print its held-out numbers and location."""
    from moelens.analysis.sae.plan import plan

    planned = plan(cfg)  # every check, before torch and the trainer load
    if planned.skipped:
        print(f"sae train: {planned.final} is already trained with these settings; pass --overwrite "
              "to retrain it")
        return 0
    from moelens.analysis.sae.train import train_planned

    res = train_planned(planned, cfg)
    m = res.metrics["heldout"]
    print(f"sae train: layer {cfg.layer} {cfg.space} -> space {cfg.name!r} ({res.describe()}): "
          f"held-out explained variance {m['explained_variance']:.3f} (FVU {m['fvu']:.3f}), "
          f"L0 {m['l0']:.1f}, dead {m['dead_fraction']:.1%} on {m['n_tokens']} tokens")
    print(f"sae train: saved to {res.path}; read it as space {cfg.name!r} at layer {cfg.layer}")
    return 0
