"""``moelens eval``: validation loss and perplexity of a saved model on a token directory.

This module holds the typed config (the command's ``--help``) and the entry point; the
computation is :func:`moelens.training.scoring.evaluate`.

The loss is next-token cross-entropy in nats per token, without any auxiliary MoE loss, so it
compares across dense and MoE models. The context defaults to the one the model was trained
with (``training.json`` in a model dir written by ``moelens train``). By default every token of
the split is predicted once (non-overlapping windows; block starts when ctx+1 is the chess
block size); ``--iters N`` instead
averages over N batches of random windows, drawn from ``--seed``. For chess data a token is one
character, so the loss is also nats per character (the paper's val loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from moelens.errors import CheckpointError, ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from moelens.training.backend import Backend


@dataclass
class EvalConfig:
    """Which saved model to evaluate on which data."""

    model: Path | None = None
    """saved model directory (e.g. <run>/model from 'moelens train') (required)"""
    data: Path | None = None
    """token directory from 'moelens data chess|text' (required)"""
    split: Literal["val", "train"] = "val"
    """which split of the data to evaluate on"""
    iters: int | None = None
    """batches of random windows to average over (default: the whole split, each token once)"""
    batch_size: int = 16
    """windows per forward pass"""
    ctx: int | None = None
    """context length (default: the one the model was trained with, else the model's maximum;
    at most block_size-1 for chess blocks)"""
    seed: int = 0
    """seed of the random windows (with --iters)"""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """device: cuda when available (auto), or forced"""
    dtype: Literal["auto", "fp32", "bf16"] = "auto"
    """compute dtype: bf16 autocast, fp32, or auto (bf16 on a GPU that supports it)"""
    out: Path | None = None
    """also write the results as JSON to this file"""
    quiet: bool = False
    """no progress bar"""

    def __post_init__(self) -> None:
        for name in ("iters", "batch_size", "ctx"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name}={value} must be at least 1")

    def check_paths(self) -> None:
        """Both directories are given and exist (checked at run time, before anything loads)."""
        if self.model is None or self.data is None:
            raise ConfigError("pass --model DIR (a saved model) and --data DIR (a token directory)")
        if not Path(self.data).is_dir():
            raise DataError(f"data directory {self.data} does not exist; create it with 'moelens "
                            "data' or fix --data")
        if not Path(self.model).is_dir():
            raise CheckpointError(f"model directory {self.model} does not exist; give the 'model' "
                                  "folder of a finished training run")


def run(cfg: EvalConfig, backend: Backend | None = None) -> int:
    """``moelens eval``: print the loss and perplexity; write them as JSON with ``--out``."""
    from moelens.rundir import atomic_write_json
    from moelens.training.scoring import evaluate

    cfg.check_paths()
    result = evaluate(cfg, backend)
    per_char = " (nats/char)" if "nats_per_char" in result else ""
    print(f"{result['split']} loss {result['loss']:.4f} nats/token{per_char}, perplexity "
          f"{result['perplexity']:.4f} over {result['tokens']:,} tokens (ctx {result['ctx']})")
    if cfg.out is not None:
        atomic_write_json(cfg.out, result)
        print(f"results written to {cfg.out}")
    return 0
