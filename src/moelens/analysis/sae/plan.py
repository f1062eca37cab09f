"""What ``moelens sae train`` will do, decided before any training code (or torch) is loaded.

:func:`plan` opens the store and checks the request, resolves the settings, draws the held-out
split, and decides between the three outcomes, so bad input fails in a fraction of a second and
nothing is written before it is known to be good:

- a finished SAE at ``derived/L<layer>/<name>/`` trained with the same settings is skipped; one
  with other settings is an error unless ``overwrite`` (then it is replaced when the new one is
  complete);
- an unfinished training in ``derived/L<layer>/<name>.training/`` is resumed if its settings
  match, and is an error otherwise (unless ``overwrite``, which starts again);
- anything else starts fresh.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moelens.config import to_dict
from moelens.errors import ConfigError, StoreError
from moelens.rundir import atomic_write_json, provenance
from moelens.store import ActivationStore
from moelens.store import derived as dspace

TRAJECTORY = ("layer", "space", "kind", "latents", "k", "l1_coef", "l1_warmup", "steps", "batch_size",
              "lr", "lr_warmup", "lr_decay", "auxk_alpha", "dead_tokens", "holdout", "log_every",
              "seed")
"""Settings that change what is trained; the others (paths, name, chunking, checkpoints,
threads) may differ between a run and its resumption."""


@dataclass(frozen=True)
class Split:
    """Token indices of the store used for training and for the held-out metrics (sorted)."""

    train: np.ndarray
    heldout: np.ndarray


@dataclass
class Plan:
    """A checked request: the store, the source width, the resolved settings, the split, where
    the SAE goes (``final``) and where it trains (``work``), and whether it is already done."""

    store: ActivationStore
    d_in: int
    settings: dict[str, Any]
    split: Split
    final: Path
    work: Path
    skipped: bool


def check_request(store: ActivationStore, layer: int, space: str, name: str) -> int:
    """The source width, or a StoreError/ConfigError saying what is wrong with the request."""
    if layer not in store.layers:
        raise StoreError(f"layer {layer} is not in the store {store.root}; it holds layers {store.layers}")
    have = store.spaces(layer)
    if space not in have:
        raise StoreError(f"space {space!r} is not in the store at layer {layer}; it holds {', '.join(have)}")
    if space not in dspace.SOURCE_SPACES:
        why = ("is itself derived" if dspace.name_problem(space) is None
               else "has no dense [tokens, units] view")
        raise ConfigError(f"space {space!r} {why}; train an SAE on a dense space "
                          f"({', '.join(s for s in dspace.SOURCE_SPACES if s in have) or 'none here'})")
    if (problem := dspace.name_problem(name)) is not None:
        raise ConfigError(problem + "; choose another --name")
    return store.width(layer, space)


def resolve(cfg: Any, d_in: int) -> dict[str, Any]:
    """The settings that shape training, with ``latents`` and ``lr`` made concrete (``lr`` 0 is
    sparsify's Adam rule, 2e-4 / sqrt(latents / 2^14))."""
    s = {k: v for k, v in to_dict(cfg).items() if k in TRAJECTORY}
    s["latents"] = cfg.latents or cfg.expansion * d_in
    if cfg.kind == "topk" and cfg.k > s["latents"]:
        raise ConfigError(f"--k {cfg.k} is larger than the {s['latents']} latents; lower k or "
                          "raise --latents")
    s["lr"] = cfg.lr or 2e-4 / (s["latents"] / 2 ** 14) ** 0.5
    return s


def split_tokens(n_tokens: int, holdout: float, seed: int, batch_size: int) -> Split:
    """A seeded random ``holdout`` share of the tokens (at least one) held out from training;
    the rest must hold at least one batch."""
    n_held = max(1, int(round(holdout * n_tokens)))
    if n_tokens - n_held < batch_size:
        raise ConfigError(f"batch_size {batch_size} is larger than the {max(n_tokens - n_held, 0)} "
                          f"training tokens of the store ({n_tokens} less {n_held} held out); "
                          "lower --batch_size or capture more tokens")
    perm = np.random.default_rng([seed, 0]).permutation(n_tokens)
    return Split(np.sort(perm[n_held:]), np.sort(perm[:n_held]))


def changed(old: dict[str, Any] | None, new: dict[str, Any]) -> str | None:
    """The first setting that differs, as 'KEY was OLD, now NEW' (None if none does)."""
    if old is None:
        return "its config.json is unreadable"
    for key in TRAJECTORY:
        if old.get(key) != new.get(key):
            return f"{key} was {old.get(key)!r}, now {new.get(key)!r}"
    return None


def _read_settings(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def plan(cfg: Any) -> Plan:
    """Check ``cfg`` (a :class:`~.command.SaeTrainConfig`) against its store and decide."""
    store = ActivationStore.open(cfg.store)
    d_in = check_request(store, cfg.layer, cfg.space, cfg.name)
    settings = resolve(cfg, d_in)
    split = split_tokens(store.n_tokens, cfg.holdout, cfg.seed, cfg.batch_size)
    final = store.root / dspace.space_rel(cfg.layer, cfg.name)
    work = final.with_name(final.name + ".training")
    done = (final / dspace.DESCRIPTOR).exists()
    if done and not cfg.overwrite:
        why = changed(_read_settings(final / "config.json"), settings)
        if why is not None:
            raise ConfigError(f"{final} holds an SAE trained with other settings ({why}); pass "
                              "--overwrite to replace it, or --name sae_<suffix> to keep both")
        if work.exists():  # killed between the final rename and the cleanup
            shutil.rmtree(work)
        return Plan(store, d_in, settings, split, final, work, True)
    if work.exists() and not cfg.overwrite:
        why = changed(_read_settings(work / "config.json"), settings)
        if why is not None:
            raise ConfigError(f"{work} holds an unfinished SAE training with other settings ({why}); "
                              "rerun with the original settings to resume it, or pass --overwrite")
    return Plan(store, d_in, settings, split, final, work, False)


def claim(p: Plan, cfg: Any) -> None:
    """Make ``p.work`` ready: removed first with ``overwrite``; ``config.json`` written once."""
    if cfg.overwrite and p.work.exists():
        shutil.rmtree(p.work)
    if not (p.work / "config.json").exists():
        p.work.mkdir(parents=True, exist_ok=True)
        atomic_write_json(p.work / "config.json", {**provenance(cfg, cfg.seed), "settings": p.settings})
