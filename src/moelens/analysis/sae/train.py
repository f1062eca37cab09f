"""Training an SAE on a store and saving it there as a derived unit space.

:func:`train_sae` is the whole job behind ``moelens sae train``:

1. open the store and check the request (the layer exists, the source space is dense and was
   captured there, the name is a valid derived-space name);
2. decide: a finished SAE of this name and layer with the same settings is skipped, one with
   other settings is an error (unless ``overwrite``); an unfinished training in
   ``derived/L<layer>/<name>.training/`` is resumed if its settings match;
3. train (:mod:`.loop`), evaluate on the held-out tokens (:mod:`.evaluate`);
4. write ``derived/L<layer>/<name>/`` in one atomic rename: ``sae.safetensors`` + ``cfg.json``
   (for TopK, the directory loads with ``sparsify.SparseCoder.load_from_disk``), ``config.json``
   (the resolved config with provenance), ``metrics.json`` (held-out metrics and the curve),
   ``curve.csv``, and last ``derived.json`` (:func:`moelens.store.derived.write_descriptor`).
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
from moelens.analysis.sae.data import Batches, Split, split_tokens
from moelens.analysis.sae.evaluate import evaluate
from moelens.analysis.sae.checks import check_request
from moelens.analysis.sae.loop import LoopSettings, fit, probe_sample
from moelens.config import to_dict
from moelens.errors import ConfigError
from moelens.rundir import atomic_dir, atomic_write_json, atomic_write_text, provenance
from moelens.store import ActivationStore
from moelens.store import derived as dspace

PROBE_TOKENS = 2048
"""Held-out tokens behind each point of the loss curve (the final metrics use all of them)."""
TRAJECTORY = ("layer", "space", "kind", "latents", "k", "l1_coef", "steps", "batch_size", "lr",
              "lr_warmup", "lr_decay", "auxk_alpha", "dead_tokens", "holdout", "log_every", "seed")
"""Settings that change what is trained; the others (paths, chunking, checkpoints) may differ
between a run and its resumption."""


@dataclass
class SaeResult:
    """What :func:`train_sae` did: ``skipped`` (already finished) or trained, and where."""

    path: Path
    skipped: bool
    settings: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        s = self.settings
        k = f", k {s['k']}" if s.get("kind") == "topk" else f", l1 {s.get('l1_coef')}"
        return f"{s.get('kind')}, {s.get('latents')} latents{k}"


def resolve(cfg: Any, d_in: int) -> dict[str, Any]:
    """The settings that shape training, with ``latents`` and ``lr`` made concrete."""
    s = {k: v for k, v in to_dict(cfg).items() if k in TRAJECTORY}
    s["latents"] = cfg.latents or cfg.expansion * d_in
    if cfg.kind == "topk" and cfg.k > s["latents"]:
        raise ConfigError(f"--k {cfg.k} is larger than the {s['latents']} latents; lower k or "
                          "raise --latents")
    s["lr"] = cfg.lr or 2e-4 / (s["latents"] / 2 ** 14) ** 0.5
    return s


def _changed(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    for key in TRAJECTORY:
        if old.get(key) != new.get(key):
            return f"{key} was {old.get(key)!r}, now {new.get(key)!r}"
    return None


def _read_settings(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def train_sae(cfg: Any) -> SaeResult:
    """Train the SAE ``cfg`` describes (a :class:`~.command.SaeTrainConfig`) into its store."""
    store = ActivationStore.open(cfg.store)
    d_in = check_request(store, cfg.layer, cfg.space, cfg.name)
    settings = resolve(cfg, d_in)
    split = split_tokens(store.n_tokens, cfg.holdout, cfg.seed)  # sizes checked before anything is written
    batches = Batches(store, cfg.layer, cfg.space, split.train, cfg.batch_size, cfg.chunk_tokens, cfg.seed)
    final = store.root / dspace.space_rel(cfg.layer, cfg.name)
    work = final.with_name(final.name + ".training")
    if cfg.overwrite and work.exists():
        shutil.rmtree(work)
    if (final / dspace.DESCRIPTOR).exists() and not cfg.overwrite:
        old = _read_settings(final / "config.json")
        if old is not None and _changed(old, settings) is None:
            if work.exists():  # killed between the final rename and this cleanup
                shutil.rmtree(work)
            return SaeResult(final, True, settings)
        why = _changed(old, settings) if old else "its config.json is unreadable"
        raise ConfigError(f"{final} holds an SAE trained with other settings ({why}); pass "
                          "--overwrite to replace it, or --name sae_<suffix> to keep both")
    _claim(work, cfg, settings)
    before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        model, metrics = _train(store, cfg, settings, d_in, work, split, batches)
    finally:
        torch.set_num_threads(before)
    _save(final, model, cfg, settings, metrics, d_in, store.manifest.get("fingerprint"))
    shutil.rmtree(work, ignore_errors=True)
    return SaeResult(final, False, settings, metrics)


def _train(store: ActivationStore, cfg: Any, settings: dict[str, Any], d_in: int, work: Path,
           split: Split, batches: Batches) -> tuple[torch.nn.Module, dict[str, Any]]:
    model = models.build(cfg.kind, d_in, settings["latents"], cfg.k,
                         torch.Generator().manual_seed(cfg.seed))
    loop = LoopSettings(cfg.kind, cfg.steps, settings["lr"], cfg.lr_warmup, cfg.lr_decay,
                        cfg.auxk_alpha, cfg.l1_coef, cfg.dead_tokens, cfg.log_every, cfg.ckpt_every)
    probe = probe_sample(store, cfg.layer, cfg.space, split.heldout, PROBE_TOKENS, cfg.seed)
    curve = fit(model, batches, probe, loop, work, cfg.quiet)
    heldout = evaluate(model, cfg.kind, store, cfg.layer, cfg.space, split.heldout, cfg.chunk_tokens)
    metrics = {"heldout": heldout, "train_tokens": int(split.train.size),
               "epochs": cfg.steps * cfg.batch_size / split.train.size,
               "final_train_fvu": curve[-1]["fvu"], "curve": curve}
    return model, metrics


def _claim(work: Path, cfg: Any, settings: dict[str, Any]) -> None:
    """Start ``work`` (config.json) or check that the unfinished training there matches."""
    cfg_path = work / "config.json"
    if cfg_path.exists():
        old = _read_settings(cfg_path)
        why = _changed(old, settings) if old is not None else "its config.json is unreadable"
        if why:
            raise ConfigError(f"{work} holds an unfinished SAE training with other settings ({why}); "
                              "rerun with the original settings to resume it, or pass --overwrite")
        return
    work.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cfg_path, {**provenance(cfg, cfg.seed), "settings": settings})


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
