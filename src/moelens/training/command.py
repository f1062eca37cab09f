"""``moelens train``: train a dense, Switch or MoE-X language model on a token directory.

This module holds only the typed config (it is the command's ``--help``) and the entry point;
the loop and its parts live in :mod:`moelens.training`. torch is imported lazily so that a bad
flag fails in a fraction of a second.

A run directory ``<out>/`` holds ``config.json`` (provenance), ``metrics.jsonl``, ``ckpt/``
(the latest checkpoint, removed once finished), and when finished ``model/`` (a Hugging Face
model dir with the data's tokenizer and ``training.json``), ``summary.json`` and ``DONE``.

Examples::

    moelens train --preset quickstart-moex --data runs/quickstart/data
    moelens train --preset train-chess-8l-paper --model.n_layer 4 --out runs/small/train
    moelens train ... --resume                       # continue a killed run exactly
    python -m torch.distributed.run --nproc_per_node 8 -m moelens train --preset ...
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from moelens.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from moelens.training.backend import Backend


@dataclass
class ModelSpec:
    """Which model to build: a preset from ``moelens.models.presets`` plus field overrides.

    Every field except ``preset`` defaults to None, meaning "as the preset says"; ``vocab_size``
    defaults to the data's vocabulary and ``n_positions`` is raised to ``ctx`` when smaller.
    """

    preset: str = "moex"
    """model preset name (e.g. dense-gelu, switch, moex) or a path to a model config file; the
    fields below override it"""
    vocab_size: int | None = None
    """vocabulary size (default: the data's vocab_size)"""
    n_positions: int | None = None
    """maximum sequence length the model accepts (default: the preset's, at least ctx)"""
    n_layer: int | None = None
    """number of transformer layers"""
    n_head: int | None = None
    """attention heads per layer"""
    n_embd: int | None = None
    """residual stream width d"""
    bias: bool | None = None
    """use biases in linear layers and layer norms"""
    dropout: float | None = None
    """dropout probability"""
    ffn: Literal["dense", "moe"] | None = None
    """feed-forward kind: a dense MLP or a mixture of experts"""
    ffn_width: int | None = None
    """hidden width of a dense MLP"""
    ffn_act: str | None = None
    """activation of a dense MLP (e.g. gelu, relu)"""
    num_experts: int | None = None
    """experts per MoE layer"""
    top_k: int | None = None
    """experts each token is routed to"""
    expert_width: int | None = None
    """hidden width of each expert"""
    expert_act: str | None = None
    """activation inside each expert (relu for MoE-X, gelu for Switch)"""
    router: Literal["softmax", "sparsity"] | None = None
    """router: a learned softmax router, or MoE-X's sparsity-aware router"""
    router_temperature: float | None = None
    """temperature of the softmax over the kept router scores"""
    router_eps: float | None = None
    """epsilon added to the variance inside the sparsity router's erf (numerical safety)"""
    aux_loss_coef: float | None = None
    """weight of the Switch load-balancing loss (0 disables)"""

    def overrides(self) -> dict[str, Any]:
        """The fields the user set, as keyword overrides for ``model_config``."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "preset" and getattr(self, f.name) is not None}


@dataclass
class TrainConfig:
    """Settings of one training run (single process, or one of several under torchrun)."""

    data: Path | None = None
    """token directory written by 'moelens data chess|text' (required)"""
    out: Path | None = None
    """run directory for config, metrics, checkpoints and the final model (required)"""
    model: ModelSpec = field(default_factory=ModelSpec)
    """the model to build (ignored when init_from is given)"""
    init_from: Path | None = None
    """start from a saved model directory (e.g. an upcycled or trained model) instead of a
    freshly initialised one"""
    ctx: int = 256
    """context length: tokens per training example (each example is a window of ctx+1 tokens)"""
    batch_size: int = 16
    """examples per micro-step summed over all processes (each of N processes takes
    batch_size/N of them)"""
    grad_accum: int = 1
    """micro-steps accumulated per optimizer step; tokens per step = batch_size*grad_accum*ctx"""
    max_iters: int | None = None
    """optimizer steps to train for (give this or max_tokens)"""
    max_tokens: int | None = None
    """train until this many tokens were seen, rounded up to whole steps (instead of max_iters)"""
    lr: float = 3e-4
    """peak learning rate, reached after warmup"""
    min_lr: float = 3e-5
    """learning rate at the end of the cosine decay"""
    warmup_iters: int = 100
    """steps of linear warmup from 0 to lr"""
    weight_decay: float = 0.1
    """AdamW weight decay on weight matrices (never on norms, biases or embeddings)"""
    beta1: float = 0.9
    """AdamW beta1"""
    beta2: float = 0.95
    """AdamW beta2"""
    grad_clip: float = 1.0
    """clip the global gradient norm to this value (0 disables)"""
    eval_interval: int = 200
    """compute validation loss every this many steps, at step 0 and at the end (0: only at the
    end)"""
    eval_iters: int = 20
    """batches of batch_size validation windows per evaluation (the same windows every time)"""
    log_interval: int = 10
    """write a metrics.jsonl line every this many steps"""
    ckpt_interval: int = 500
    """write a resumable checkpoint every this many steps (0: only when stopping early)"""
    dtype: Literal["auto", "fp32", "bf16"] = "auto"
    """compute dtype: bf16 autocast, fp32, or auto (bf16 on a GPU that supports it, else fp32)"""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """device: cuda when available (auto), or forced"""
    cpu_threads: int = 0
    """torch CPU threads for this run (0: torch's default); lower it when several processes share
    few cores"""
    seed: int = 0
    """seed of the model initialisation, data sampling and dropout"""
    resume: bool = False
    """continue an unfinished run in out from its latest checkpoint"""
    overwrite: bool = False
    """delete out and start again (also reruns a finished run)"""
    quiet: bool = False
    """no progress bar"""
    stop_after: int | None = None
    """stop after this many steps with a checkpoint, as if interrupted (continue with --resume);
    for splitting a run over job slots"""

    def __post_init__(self) -> None:
        positive = {"ctx": self.ctx, "batch_size": self.batch_size, "grad_accum": self.grad_accum,
                    "log_interval": self.log_interval, "eval_iters": self.eval_iters}
        for name in ("max_iters", "max_tokens", "stop_after"):
            if getattr(self, name) is not None:
                positive[name] = getattr(self, name)
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"{name}={value} must be at least 1")
        for name in ("warmup_iters", "eval_interval", "ckpt_interval", "cpu_threads"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be 0 or more")
        for name in ("lr", "min_lr", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name}={value} must be a finite number >= 0")
        if self.lr == 0:
            raise ConfigError("lr=0 would not train; give a positive learning rate")
        if self.min_lr > self.lr:
            raise ConfigError(f"min_lr={self.min_lr} is above lr={self.lr}; use min_lr <= lr")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be in [0, 1)")
        if (self.max_iters is None) == (self.max_tokens is None):
            raise ConfigError("give exactly one of --max_iters or --max_tokens")

    def check_paths(self) -> None:
        """Required paths are given (checked at run time so presets may leave them out)."""
        if self.data is None:
            raise ConfigError("no data given; pass --data DIR (a directory from 'moelens data')")
        if self.out is None:
            raise ConfigError("no run directory given; pass --out DIR")

    @property
    def tokens_per_iter(self) -> int:
        """Tokens (predicted positions) per optimizer step over all processes."""
        return self.batch_size * self.grad_accum * self.ctx

    @property
    def total_iters(self) -> int:
        """Optimizer steps of the whole run, from max_iters or max_tokens."""
        if self.max_iters is not None:
            return self.max_iters
        assert self.max_tokens is not None
        return -(-self.max_tokens // self.tokens_per_iter)


def run(cfg: TrainConfig, backend: Backend | None = None) -> int:
    """Train (or resume, or skip a finished run) as ``cfg`` says, and say where the results are.

    ``backend`` supplies the model builder/loader and the token reader; the default uses
    ``moelens.models`` and ``moelens.data.tokens`` (tests may inject another).
    """
    from moelens.training.checkpoint import CKPT_DIR
    from moelens.training.loop import train

    cfg.check_paths()
    done = train(cfg, backend)
    if not done.is_main:
        return 0
    if done.status == "skipped":
        print(f"moelens train: {done.out} already finished (val loss "
              f"{done.summary.get('val_loss')}); model in {done.summary.get('model')}; pass "
              "--overwrite to train again")
    elif done.status == "stopped":
        print(f"moelens train: stopped after step {done.step} of {done.total}; checkpoint in "
              f"{done.out / CKPT_DIR}; rerun with --resume to continue")
    else:
        sm = done.summary
        print(f"moelens train: val loss {sm['val_loss']:.4f} (perplexity "
              f"{sm['val_perplexity']:.3f}) after {done.total} steps ({sm['tokens']:,} tokens); "
              f"model saved to {sm['model']}")
    return 0
