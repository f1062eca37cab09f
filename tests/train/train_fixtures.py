"""Fixtures of the trainer tests.

Test modules import what they use (``from train_fixtures import ...``) instead of this being a
``conftest.py``: a second module named ``conftest`` would shadow ``tests/conftest.py`` for the
``from conftest import run_cli`` in tests/test_config_cli.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import token_fixtures
import train_helpers

from moelens.training import backend as backend_mod


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
    return token_fixtures.write_token_dir(tmp_path_factory.mktemp("tokens") / "data")


@pytest.fixture(scope="session")
def text_token_dir(tmp_path_factory) -> Path:
    """Like ``token_dir`` but of kind text (no blocks), with a tokenizer.json."""
    return token_fixtures.write_token_dir(tmp_path_factory.mktemp("text") / "data", kind="text",
                                       seed=5, block_size=None)


@pytest.fixture(scope="session")
def trained_run(text_token_dir, tmp_path_factory) -> Path:
    """A finished 20-step run on the text token directory (shared by the eval tests)."""
    from moelens.training.command import run

    out = tmp_path_factory.mktemp("trained") / "run"
    assert run(train_helpers.tiny_config(text_token_dir, out), train_helpers.make_backend()) == 0
    return out


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One intra-op thread: these models are tiny, and on shared cores extra threads only
    contend (a 6x slowdown measured on a loaded 2-core machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
