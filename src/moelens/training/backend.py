"""The trainer's only links to the model and data subsystems.

Everything the training loop and ``moelens eval`` need from outside is three functions: build a
fresh model from a :class:`~moelens.training.command.ModelSpec`, load a saved model directory, and open a
token directory. Keeping them in one small object means the loop never imports a model family,
and tests can run the real loop with, say, a model builder that fails on purpose by passing
another :class:`Backend`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from moelens.errors import ConfigError, DataError, MoelensError


class TokenSource(Protocol):
    """What the trainer reads from a token directory (``moelens.data.tokens.TokenData``)."""

    meta: dict[str, Any]
    train: Any  # 1-d integer array (numpy memmap)
    val: Any

    def tokenizer(self) -> Any: ...


def build_model(spec: Any, vocab_size: int, ctx: int):
    """A freshly initialised ``MoelensForCausalLM`` from ``spec`` (preset + overrides).

    The vocabulary defaults to the data's; ``n_positions`` is raised to ``ctx`` when the preset's
    is smaller. Initialisation draws from torch's global generator, which the caller seeds
    inside ``torch.random.fork_rng``.
    """
    models = importlib.import_module("moelens.models")
    presets = importlib.import_module("moelens.models.presets")
    overrides = spec.overrides()
    if overrides.setdefault("vocab_size", vocab_size) < vocab_size:
        raise ConfigError(f"model.vocab_size={overrides['vocab_size']} is smaller than the data's "
                          f"vocabulary ({vocab_size}); leave it out or raise it")
    try:
        mcfg = presets.model_config(spec.preset, **overrides)
    except MoelensError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"cannot build model preset {spec.preset!r} with {overrides}: {exc}") from None
    if getattr(mcfg, "n_positions", ctx) < ctx:
        if spec.n_positions is not None:
            raise ConfigError(f"model.n_positions={spec.n_positions} is below ctx={ctx}; raise it "
                              "or lower --ctx")
        mcfg.n_positions = ctx
    return models.MoelensForCausalLM(mcfg)


def load_model(path: Path):
    """A saved causal LM directory (a moelens model, or any local Hugging Face causal LM)."""
    saved = importlib.import_module("moelens.models.saved")
    return saved.load_saved_model(Path(path), what="a model ('model' folder of a finished "
                                                   "training run)")


def open_tokens(path: Path) -> TokenSource:
    """The token directory at ``path`` (validated by ``moelens.data.tokens.TokenData``)."""
    path = Path(path)
    if not (path / "meta.json").is_file():
        raise DataError(f"{path} is not a token directory (no meta.json); create one with "
                        "'moelens data chess' or 'moelens data text'")
    tokens = importlib.import_module("moelens.data.tokens")
    return tokens.TokenData(path)


@dataclass(frozen=True)
class Backend:
    """The model builder/loader and token reader the trainer uses (swap for tests)."""

    build_model: Callable[[Any, int, int], Any] = build_model
    """``(ModelSpec, vocab_size, ctx) -> nn.Module`` with the moelens forward contract"""
    load_model: Callable[[Path], Any] = load_model
    """``(model_dir) -> nn.Module``"""
    open_tokens: Callable[[Path], TokenSource] = open_tokens
    """``(token_dir) -> TokenSource``"""


def default_backend() -> Backend:
    """The backend used by the command line (looked up at call time so tests can patch it)."""
    return Backend()
