"""Fixtures of the auto-interpretation tests: the planted store, and the shared sentence encoder.

Helpers live in plain modules of this folder (``ai_planted``, ``ai_chat_server``, ``ai_helpers``),
imported by names no other test folder uses.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import ai_planted  # noqa: E402


@pytest.fixture(scope="session")
def planted_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("planted") / "store"
    ai_planted.build(root)
    return root


@pytest.fixture(scope="session")
def encoder():
    """The MiniLM encoder, loaded once for the whole session (about 5 s of imports)."""
    from moelens.analysis.autointerp.scorers.embedding import encoder as load

    return load("cpu")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The encoder and the tiny models run on one thread: on a busy 2-core machine two torch
    threads wait on each other far longer than one thread computes."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
