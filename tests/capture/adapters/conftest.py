"""Fixtures of the adapter conformance suite (families are defined in ``adapter_families``)."""

from __future__ import annotations

import pytest
import torch

from .adapter_families import BY_NAME, FAMILIES, VOCAB, cached


@pytest.fixture(params=[f.name for f in FAMILIES])
def family_model(request):
    """``(Family, model)`` for every family."""
    return BY_NAME[request.param], cached(request.param)


@pytest.fixture(params=[f.name for f in FAMILIES if f.moe_layers])
def moe_model(request):
    """``(Family, model)`` for every MoE family."""
    return BY_NAME[request.param], cached(request.param)


@pytest.fixture(params=[f.name for f in FAMILIES if len(f.moe_layers) < f.num_layers])
def dense_layer_model(request):
    """``(Family, model)`` for every family with at least one dense-MLP layer (dense-first MoE too)."""
    return BY_NAME[request.param], cached(request.param)


@pytest.fixture
def input_ids() -> torch.Tensor:
    """A seeded batch of 2 × 7 token ids (pad-free)."""
    return torch.randint(3, VOCAB, (2, 7), generator=torch.Generator().manual_seed(0))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models gain nothing from threads; on a shared 2-core box one thread is faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
