"""Fixtures of the end-to-end tests: tiny saved models and their activation stores (built once
per session; builders live in ``e2e_helpers``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from clitools import run_cli

from .e2e_helpers import bpe_tokenizer, save_tiny_models, write_corpus


@pytest.fixture(scope="session")
def e2e_stores(tmp_path_factory) -> dict[str, Path]:
    """A tiny OLMoE and a tiny Llama captured with ``moelens capture`` on the same corpus."""
    root = tmp_path_factory.mktemp("e2e")
    corpus = write_corpus(root / "corpus", n_prose=12, n_code=4)
    tok = bpe_tokenizer([p.read_text() for p in corpus])
    moe, dense = save_tiny_models(root, tok)
    paths = {"root": root}
    for name, model in (("moe", moe), ("dense", dense)):
        store = root / f"store_{name}"
        proc = run_cli("capture", "--model", model, "--corpus", *corpus, "--out", store,
                       "--ctx", "128", "--quiet")
        assert proc.returncode == 0, proc.stderr[-3000:]
        paths[f"store_{name}"] = store
    return paths
