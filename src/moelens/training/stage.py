"""Run-directory decisions for ``moelens train`` and the final model directory.

- a finished run (``DONE``) is skipped unless ``--overwrite``;
- an unfinished one (``config.json`` but no ``DONE``) is continued only with ``--resume``, and
  only if the settings that shape the training trajectory are unchanged; without ``--resume``
  it is an error, so a typo in ``--out`` never silently continues or clobbers another run;
- anything else starts fresh.

The final model is written to a hidden temporary directory in ``<out>`` and renamed to
``<out>/model`` when complete, with the tokenizer beside it so the directory loads and captures
on its own.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Literal

from moelens.config import to_dict
from moelens.errors import ConfigError
from moelens.hf_progress import quiet_hf_progress
from moelens.rundir import Stage, atomic_dir, atomic_write_json

MODEL_DIR = "model"
TRAINING_FILE = "training.json"

# Settings that change what a run computes; the rest (quiet, device, intervals...) may differ
# between a run and its resumption.
TRAJECTORY_KEYS = ("data", "model", "init_from", "ctx", "batch_size", "grad_accum", "max_iters",
                   "max_tokens", "lr", "min_lr", "warmup_iters", "weight_decay", "beta1",
                   "beta2", "grad_clip", "dtype", "seed")

Decision = Literal["skip", "fresh", "resume"]


def decide(cfg: Any) -> Decision:
    """What to do with ``cfg.out``; read-only, so every process can call it."""
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a directory for the run")
    stage = Stage(out)
    if cfg.overwrite:
        return "fresh"
    if stage.done:
        return "skip"
    if not (out / "config.json").exists():
        return "fresh"
    if not cfg.resume:
        raise ConfigError(f"{out} holds an unfinished run; pass --resume to continue it or "
                          "--overwrite to start again")
    _check_same_trajectory(cfg, out)
    return "resume"


def _check_same_trajectory(cfg: Any, out: Path) -> None:
    try:
        old = json.loads((out / "config.json").read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"{out}/config.json is unreadable; pass --overwrite to start again") from None
    new = to_dict(cfg)
    changed = [k for k in TRAJECTORY_KEYS if old.get(k) != new.get(k)]
    if changed:
        k = changed[0]
        raise ConfigError(f"cannot resume {out}: {k} was {old.get(k)!r}, now {new.get(k)!r}; use "
                          "the original settings, or --overwrite (or a new --out with --init_from "
                          "to continue from a saved model)")


def begin(cfg: Any) -> None:
    """Create (or, with overwrite, recreate) the run directory and write config.json."""
    Stage(Path(cfg.out)).begin(cfg, overwrite=cfg.overwrite, seed=cfg.seed)


def finished_summary(out: Path) -> dict[str, Any]:
    """The summary stored in a finished run's DONE marker (empty if unreadable)."""
    try:
        return json.loads((Path(out) / "DONE").read_text()) or {}
    except (OSError, ValueError):
        return {}


def _hf_tokenizer(tokens: Any) -> Any:
    """The data's tokenizer as something with ``save_pretrained`` (chess: its HF twin), or None."""
    tokenizer = tokens.tokenizer() if hasattr(tokens, "tokenizer") else None
    if tokenizer is None or hasattr(tokenizer, "save_pretrained"):
        return tokenizer
    hf = getattr(tokenizer, "hf", None)  # moelens.data.chess.ChessTokenizer
    return hf() if callable(hf) else None


def save_model_dir(model: Any, tokens: Any, data_dir: Path, out: Path,
                   training: dict[str, Any]) -> Path:
    """``save_pretrained`` the model plus the data's tokenizer into ``<out>/model``, atomically.

    ``training`` (context length, data, steps...) goes to ``training.json`` beside the weights:
    ``moelens eval`` takes its default context from it, since the model's position table may
    be longer than what was trained.
    """
    final = Path(out) / MODEL_DIR
    with atomic_dir(final) as tmp, quiet_hf_progress():
        model.save_pretrained(tmp)
        tokenizer = _hf_tokenizer(tokens)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        else:
            name = (getattr(tokens, "meta", {}) or {}).get("tokenizer")
            source = Path(data_dir) / name if isinstance(name, str) else None
            if source is not None and source.is_file():
                shutil.copyfile(source, tmp / source.name)
        atomic_write_json(tmp / TRAINING_FILE, training)
    return final
