"""Checkpoints that a crash cannot corrupt and that resume a run exactly.

A checkpoint at step ``t`` is two files in ``<out>/ckpt/``:

- ``model-<t>.safetensors``: the model weights (shared tensors stored once);
- ``state-<t>.pt``: optimizer state, the step (which fixes the learning rate and the data
  windows), and every process's RNG state as tensors, so it loads with
  ``torch.load(weights_only=True)``.

Each is written under a temporary name and renamed; ``latest.json`` (also atomic) is written
last and names the pair with their sha256, so a kill at any moment leaves either the previous
checkpoint or the new one, and a damaged file is reported instead of silently loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from moelens.errors import CheckpointError
from moelens.rundir import atomic_path, atomic_write_json, sha256_file

CKPT_DIR = "ckpt"
POINTER = "latest.json"


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """This process's torch RNG state (CPU, and the current GPU's when on CUDA)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def save(out: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
         rng_states: list[dict[str, torch.Tensor]]) -> None:
    """Write the checkpoint of ``step`` (call on rank 0 only) and drop older ones."""
    ckpt = Path(out) / CKPT_DIR
    model_name, state_name = f"model-{step:08d}.safetensors", f"state-{step:08d}.pt"
    with atomic_path(ckpt / model_name) as tmp:
        save_model(model, str(tmp), metadata={"step": str(step)})
    state = {"step": step, "optimizer": optimizer.state_dict(),
             "rng": [{k: v.cpu() for k, v in s.items()} for s in rng_states]}
    with atomic_path(ckpt / state_name) as tmp:
        torch.save(state, tmp)
    atomic_write_json(ckpt / POINTER, {
        "step": step,
        "model": model_name, "model_sha256": sha256_file(ckpt / model_name),
        "state": state_name, "state_sha256": sha256_file(ckpt / state_name),
    })
    for old in ckpt.iterdir():
        if old.name not in (model_name, state_name, POINTER) and not old.name.startswith("."):
            old.unlink()


def latest_step(out: Path) -> int | None:
    """The step of the latest complete checkpoint in ``out``, or None if there is none."""
    return _pointer(Path(out))["step"] if (Path(out) / CKPT_DIR / POINTER).exists() else None


def _pointer(out: Path) -> dict[str, Any]:
    path = out / CKPT_DIR / POINTER
    try:
        info = json.loads(path.read_text())
        int(info["step"]), str(info["model"]), str(info["state"])
    except (OSError, ValueError, KeyError, TypeError):
        raise CheckpointError(f"checkpoint index {path} is unreadable; delete {out / CKPT_DIR} to "
                              "restart from scratch, or pass --overwrite") from None
    return info


def _verified(out: Path, info: dict[str, Any], key: str) -> Path:
    path = out / CKPT_DIR / info[key]
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} is missing; pass --overwrite to start again")
    expected = info.get(f"{key}_sha256")
    if expected and sha256_file(path) != expected:
        raise CheckpointError(f"checkpoint file {path} is corrupt (checksum mismatch); pass "
                              "--overwrite to start again")
    return path


def load(out: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
         device: torch.device) -> dict[str, Any]:
    """Restore weights and optimizer from the latest checkpoint; returns the saved state."""
    out = Path(out)
    info = _pointer(out)
    model_path, state_path = _verified(out, info, "model"), _verified(out, info, "state")
    try:
        missing, unexpected = load_model(model, str(model_path), strict=False, device=str(device))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise CheckpointError(f"checkpoint file {model_path} cannot be read ({type(exc).__name__}); "
                              "pass --overwrite to start again") from None
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {model_path} does not match the model (missing "
                              f"{list(missing)[:3]}, unexpected {list(unexpected)[:3]}); the run "
                              "config changed: pass --overwrite or restore the config")
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
    except Exception as exc:  # truncated pickle, wrong structure, shape mismatch
        raise CheckpointError(f"checkpoint file {state_path} cannot be read ({type(exc).__name__}); "
                              "pass --overwrite to start again") from None
    if int(state["step"]) != int(info["step"]):
        raise CheckpointError(f"checkpoint files in {out / CKPT_DIR} disagree on the step; pass "
                              "--overwrite to start again")
    return state
