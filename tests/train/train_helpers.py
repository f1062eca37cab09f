"""Helpers shared by the trainer tests (imported by name; tests/train is on sys.path).

``REAL_BACKEND`` is the one line to flip once ``moelens.models`` and ``moelens.data`` are merged:
the tests then train the real model on token directories read by the real ``TokenData`` instead
of the stand-ins in ``train_stubs.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import train_stubs

from moelens.train import ModelSpec, TrainConfig
from moelens.training import backend as backend_mod

REAL_BACKEND = os.environ.get("MOELENS_TEST_REAL_BACKEND", "1") == "1"
"""True: use moelens.models / moelens.data (the default backend); False: the test stand-ins.
Both are merged, so the real backend is the default."""


def make_backend() -> backend_mod.Backend:
    if REAL_BACKEND:
        return backend_mod.Backend()
    return backend_mod.Backend(build_model=train_stubs.build_stub_model,
                               load_model=train_stubs.load_stub_model,
                               open_tokens=train_stubs.StubTokens)


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
