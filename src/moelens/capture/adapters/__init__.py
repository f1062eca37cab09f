"""Model adapters: one small class per model family, registered by ``config.model_type``.

``get_adapter(model)`` returns the family's :class:`Adapter`; ``adapter.attach(sink, layers,
spaces)`` installs hooks that report routing, expert neurons, shared-expert and dense-MLP neurons
and the residual stream to ``sink`` during a forward (docs/interfaces.md, "Adapters").
"""

from __future__ import annotations

from . import families as _families  # noqa: F401  (registers the HF families)
from . import moelens_models as _moelens_models  # noqa: F401  (registers model_type "moelens")
from .base import EXPERT_SPACES, SPACES, Adapter, Handle, Sink, StopForward
from .hf import HFAdapter
from .loading import load_model
from .registry import get_adapter, register, supported_families

__all__ = [
    "EXPERT_SPACES",
    "SPACES",
    "Adapter",
    "HFAdapter",
    "Handle",
    "Sink",
    "StopForward",
    "get_adapter",
    "load_model",
    "register",
    "supported_families",
]
