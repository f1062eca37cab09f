"""Training an SAE on a store and saving it there as a derived unit space.

:func:`train_sae` is the whole job behind ``moelens sae train``: :func:`.plan.plan` checks the
request and decides (skip, resume or start), then :func:`train_planned`

1. trains (:mod:`.loop`) and evaluates on the held-out tokens (:mod:`.evaluate`);
2. writes ``derived/L<layer>/<name>/`` in one atomic rename: ``sae.safetensors`` + ``cfg.json``
   (for TopK, the directory loads with ``sparsify.SparseCoder.load_from_disk``), ``config.json``
   (the resolved config with provenance), ``metrics.json`` (held-out metrics and the curve),
   ``curve.csv``, and last ``derived.json`` (:func:`moelens.store.derived.write_descriptor`);
3. removes the training directory.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moelens.analysis.sae import models
from moelens.analysis.sae.data import Batches
from moelens.analysis.sae.evaluate import evaluate
from moelens.analysis.sae.loop import LoopSettings, fit, probe_sample
from moelens.analysis.sae.plan import Plan, claim, plan
from moelens.rundir import atomic_dir, atomic_write_json, atomic_write_text, provenance
from moelens.store import derived as dspace

PROBE_TOKENS = 2048
"""Held-out tokens behind each point of the loss curve (the final metrics use all of them)."""


@dataclass
class SaeResult:
    """What :func:`train_sae` did: ``skipped`` (already finished) or trained, where the SAE is,
    its resolved settings and its metrics (``metrics.json``: ``heldout`` {fvu,
    explained_variance, mse, l0, dead_fraction, dead, alive, n_tokens}, ``curve``, ...)."""

    path: Path
    skipped: bool
    settings: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        s = self.settings
        k = f", k {s['k']}" if s.get("kind") == "topk" else f", l1 {s.get('l1_coef')}"
        return f"{s.get('kind')}, {s.get('latents')} latents{k}"


def train_sae(cfg: Any) -> SaeResult:
    """Train the SAE ``cfg`` describes (a :class:`~.command.SaeTrainConfig`) into its store,
    or return at once (``skipped``) if it is already there."""
    return train_planned(plan(cfg), cfg)


def train_planned(p: Plan, cfg: Any) -> SaeResult:
    """Carry out a :class:`~.plan.Plan`: train, evaluate, save (see the module doc)."""
    if p.skipped:  # the finished SAE's own numbers (NaN was saved as null)
        return SaeResult(p.final, True, p.settings, json.loads((p.final / "metrics.json").read_text()))
    claim(p, cfg)
    before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        model, metrics = _train(p, cfg)
    finally:
        torch.set_num_threads(before)
    _save(p.final, model, cfg, p.settings, metrics, p.d_in, p.store.manifest.get("fingerprint"))
    shutil.rmtree(p.work, ignore_errors=True)
    return SaeResult(p.final, False, p.settings, metrics)


def _train(p: Plan, cfg: Any) -> tuple[torch.nn.Module, dict[str, Any]]:
    store, split, settings = p.store, p.split, p.settings
    batches = Batches(store, cfg.layer, cfg.space, split.train, cfg.batch_size, cfg.chunk_tokens, cfg.seed)
    model = models.build(cfg.kind, p.d_in, settings["latents"], cfg.k,
                         torch.Generator().manual_seed(cfg.seed))
    loop = LoopSettings(cfg.kind, cfg.steps, settings["lr"], cfg.lr_warmup, cfg.lr_decay,
                        cfg.auxk_alpha, cfg.l1_coef, cfg.l1_warmup, cfg.dead_tokens, cfg.log_every,
                        cfg.ckpt_every)
    probe = probe_sample(store, cfg.layer, cfg.space, split.heldout, PROBE_TOKENS, cfg.seed)
    curve = fit(model, batches, probe, loop, p.work, cfg.quiet)
    heldout = evaluate(model, cfg.kind, store, cfg.layer, cfg.space, split.heldout, cfg.chunk_tokens)
    metrics = {"heldout": heldout, "train_tokens": int(split.train.size),
               "epochs": cfg.steps * cfg.batch_size / split.train.size,
               "final_train_fvu": curve[-1]["fvu"], "curve": curve}
    return model, metrics


def _save(final: Path, model: torch.nn.Module, cfg: Any, settings: dict[str, Any],
          metrics: dict[str, Any], d_in: int, fingerprint: str | None) -> None:
    from safetensors.torch import save_file

    with atomic_dir(final) as tmp:
        save_file(models.weights(model), str(tmp / dspace.WEIGHTS))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp / dspace.WEIGHTS, 0o666 & ~umask)  # safetensors writes it owner-only
        coder = {"kind": cfg.kind, "d_in": d_in, "num_latents": settings["latents"],
                 "normalize_decoder": True}
        if cfg.kind == "topk":  # the fields sparsify's SparseCoderConfig reads, so it loads the dir
            coder.update(model.cfg.to_dict())
        atomic_write_json(tmp / "cfg.json", coder)
        atomic_write_json(tmp / "config.json", {**provenance(cfg, cfg.seed), "settings": settings})
        atomic_write_json(tmp / "metrics.json", _finite(metrics))
        atomic_write_text(tmp / "curve.csv", _curve_csv(metrics["curve"]))
        dspace.write_descriptor(tmp, layer=cfg.layer, space=cfg.name, source_space=cfg.space,
                                encoder="topk" if cfg.kind == "topk" else "relu", width=settings["latents"],
                                d_in=d_in, k=cfg.k if cfg.kind == "topk" else None,
                                store_fingerprint=fingerprint, extra={"sae_kind": cfg.kind})


def _finite(obj: Any) -> Any:
    """NaN -> None, so the JSON is standard (the first curve point has no training means)."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _curve_csv(curve: list[dict[str, float]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(curve[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(_finite(curve))
    return buf.getvalue()
