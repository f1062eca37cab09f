"""Helpers shared by the trainer tests (imported by name; tests/train is on sys.path)."""

from __future__ import annotations

from pathlib import Path

from moelens.training import backend as backend_mod
from moelens.training.command import ModelSpec, TrainConfig


def make_backend() -> backend_mod.Backend:
    """The real backend (``moelens.models`` and ``moelens.data``), a fresh instance per call."""
    return backend_mod.Backend()


def tiny_spec(**kw) -> ModelSpec:
    """2 layers, d=32, 4 experts top-2: small enough for 2 shared CPU cores."""
    base = dict(preset="moex", n_layer=2, n_head=2, n_embd=32, num_experts=4, top_k=2,
                expert_width=16)
    return ModelSpec(**{**base, **kw})


def tiny_config(data: Path, out: Path, **kw) -> TrainConfig:
    """A 20-step CPU run on ctx 32 windows, checkpoint every 5 steps, a metrics line per step."""
    base = dict(data=data, out=out, model=tiny_spec(), ctx=32, batch_size=8, max_iters=20,
                lr=1e-2, min_lr=1e-3, warmup_iters=2, eval_interval=10, eval_iters=2,
                log_interval=1, ckpt_interval=5, device="cpu", dtype="fp32", quiet=True)
    return TrainConfig(**{**base, **kw})
