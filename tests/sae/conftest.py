"""Shared, session-scoped fixtures of the SAE tests: one synthetic store, two SAEs trained on it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from sae_store import ACTIVE, D_FFN, D_RESID, N_DIRS, N_TOKENS, build, sparse_data, topk_config


@dataclass
class Trained:
    """The synthetic store, its true dictionary of resid directions, and two trained SAEs."""

    root: Path
    resid: np.ndarray
    dirs: np.ndarray
    topk: object  # SaeResult of the TopK SAE (space 'sae')
    relu: object  # SaeResult of the ReLU + L1 SAE (space 'sae_l1')


@pytest.fixture(scope="session")
def one_thread():
    """As in the CLI subprocesses (OMP_NUM_THREADS=1): same float sums, and no thread overhead
    on tiny matrices."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, one_thread) -> Trained:
    from moelens.analysis.sae import train_sae

    root = tmp_path_factory.mktemp("sae") / "store"
    resid, dirs = sparse_data(N_TOKENS, D_RESID, N_DIRS, ACTIVE, seed=0)
    ffn, _ = sparse_data(N_TOKENS, D_FFN, 24, 2, seed=1)
    build(root, resid, ffn, shard_tokens=1024)
    topk = train_sae(topk_config(root))
    relu = train_sae(topk_config(root, name="sae_l1", kind="relu_l1", steps=600, l1_coef=0.3))
    return Trained(root, resid, dirs, topk, relu)
