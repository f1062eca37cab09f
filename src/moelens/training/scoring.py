"""Loss and perplexity of a saved model on a token directory: the library behind ``moelens eval``.

The loss is next-token cross-entropy in nats per token, without any auxiliary MoE loss, so it
compares across dense and MoE models. The context defaults to the one the model was trained
with (``training.json`` in a model dir written by ``moelens train``), capped by the model's
positions and, for chess, by the block size. Without ``iters`` every token of the split is
predicted once (non-overlapping windows; block starts when ctx+1 is the chess block size);
with it, the loss averages over ``iters`` batches of random windows drawn from ``seed``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moelens.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from moelens.training.backend import Backend

_EVAL_STREAM = 2
"""random-number stream of the evaluation windows (the trainer's windows use streams 0 and 1)"""


def _trained_ctx(model_dir: Path) -> int | None:
    """The context the model was trained with (``training.json`` of 'moelens train'), if known."""
    try:
        return int(json.loads((model_dir / "training.json").read_text())["ctx"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _context(cfg: Any, model: Any, meta: dict[str, Any]) -> int:
    mcfg = getattr(model, "config", None)
    limit = getattr(mcfg, "n_positions", None) or getattr(mcfg, "max_position_embeddings", None)
    if cfg.ctx is not None:
        if limit is not None and cfg.ctx > limit:
            raise ConfigError(f"ctx={cfg.ctx} is more than the model's {limit} positions; lower --ctx")
        return cfg.ctx
    block = meta.get("block_size")
    candidates = [c for c in (limit, block - 1 if block else None, _trained_ctx(Path(cfg.model)))
                  if c]
    if not candidates:
        raise ConfigError("cannot tell the model's context length; pass --ctx")
    return min(candidates)


def evaluate(cfg: Any, backend: Backend | None = None) -> dict[str, Any]:
    """The results dict of ``moelens eval`` for an :class:`~moelens.training.evaluate.EvalConfig`
    (no printing, no files)."""
    import numpy as np
    import torch
    from tqdm import tqdm

    from moelens.training import backend as backend_mod
    from moelens.training.lm import cross_entropy_sum, resolve_bf16, resolve_device
    from moelens.training.sampler import WindowSampler

    cfg.check_paths()
    backend = backend or backend_mod.default_backend()
    tokens = backend.open_tokens(Path(cfg.data))
    meta = tokens.meta
    device = resolve_device(cfg.device)
    bf16 = resolve_bf16(cfg.dtype, device)
    model = backend.load_model(Path(cfg.model)).to(device)
    model_vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if model_vocab is not None and model_vocab < int(meta["vocab_size"]):
        raise DataError(f"{cfg.data} has vocab_size {meta['vocab_size']} but the model only "
                        f"{model_vocab}; evaluate on data made with the model's tokenizer")
    ctx = _context(cfg, model, meta)
    sampler = WindowSampler(getattr(tokens, cfg.split), ctx, meta.get("block_size"))
    if sampler.n_windows < 1:
        raise DataError(f"the {cfg.split} split of {cfg.data} has {len(sampler.tokens)} tokens, too "
                        f"few for one window of ctx+1={ctx + 1}; lower --ctx")
    if cfg.iters is None:
        offsets = sampler.sequential_offsets()
    else:
        offsets = sampler.offsets(cfg.seed, _EVAL_STREAM, 0, cfg.iters * cfg.batch_size)
    batches = -(-len(offsets) // cfg.batch_size)
    with tqdm(total=batches, desc="eval", unit="batch", disable=cfg.quiet, dynamic_ncols=True) as bar:
        total, count = cross_entropy_sum(model, sampler, np.asarray(offsets), cfg.batch_size,
                                         device, bf16, progress=bar)
    loss = total / count
    result = {"model": str(cfg.model), "data": str(cfg.data), "split": cfg.split, "ctx": ctx,
              "tokens": count, "loss": loss, "perplexity": math.exp(min(loss, 700.0)),
              "bits_per_token": loss / math.log(2), "dtype": "bf16" if bf16 else "fp32",
              "device": str(device), "torch": torch.__version__}
    if meta.get("kind") == "chess":
        result["nats_per_char"] = loss
    return result
