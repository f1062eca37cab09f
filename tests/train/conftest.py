"""Fixtures of the trainer tests (stand-in or real backend: see ``train_helpers.REAL_BACKEND``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import train_helpers  # noqa: E402
import train_stubs  # noqa: E402

from moelens.training import backend as backend_mod  # noqa: E402


@pytest.fixture
def backend() -> backend_mod.Backend:
    return train_helpers.make_backend()


@pytest.fixture
def make_model(backend):
    """``(ModelSpec, vocab_size, ctx) -> model``: the builder the trainer is tested with."""
    return backend.build_model


@pytest.fixture
def use_backend(monkeypatch, backend):
    """Make the command line (``cli.main`` in this process) use the test backend."""
    monkeypatch.setattr(backend_mod, "default_backend", lambda: backend)
    return backend


@pytest.fixture(scope="session")
def token_dir(tmp_path_factory) -> Path:
    """A learnable 20k/4k-token directory in the documented format (vocab 32, like chess)."""
    return train_stubs.write_token_dir(tmp_path_factory.mktemp("tokens") / "data")
