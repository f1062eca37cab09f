"""Adapter registry: ``config.model_type`` → adapter class.

Adding a family is writing a subclass of :class:`~moelens.capture.adapters.hf.HFAdapter` (or of
:class:`~moelens.capture.adapters.base.Adapter` for a non-HF layout) and decorating it with
``@register("<model_type>")``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from moelens.errors import UnsupportedModelError

from .base import Adapter

_REGISTRY: dict[str, type[Adapter]] = {}


def register(*model_types: str) -> Callable[[type[Adapter]], type[Adapter]]:
    """Class decorator registering an adapter for one or more ``model_type`` values."""

    def deco(cls: type[Adapter]) -> type[Adapter]:
        for name in model_types:
            _REGISTRY[name] = cls
        cls.model_type = model_types[0]
        return cls

    return deco


def supported_families() -> list[str]:
    """Every registered ``model_type``, sorted."""
    return sorted(_REGISTRY)


def how_to_add_a_family(model_type: str | None) -> str:
    """The supported families and what adding ``model_type`` takes (the tail of both errors)."""
    return (f"supported: {', '.join(supported_families())}. To add a family, subclass "
            "moelens.capture.adapters.HFAdapter (or Adapter) and decorate it with "
            f"@moelens.capture.adapters.register({model_type or '<model_type>'!r}); a model_type transformers "
            "does not know also needs its config and model registered with transformers (AutoConfig.register, "
            "AutoModelForCausalLM.register)")


def get_adapter(model: torch.nn.Module) -> Adapter:
    """The adapter for ``model`` (chosen by ``model.config.model_type``)."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    cls = _REGISTRY.get(model_type)  # type: ignore[arg-type]
    if cls is None:
        raise UnsupportedModelError(
            f"no adapter for model_type {model_type!r}; supported: {', '.join(supported_families())}. "
            "To add a family, subclass moelens.capture.adapters.HFAdapter (or Adapter) and decorate it "
            "with @moelens.capture.adapters.register('<model_type>')"
        )
    adapter = cls(model)
    adapter.model_type = model_type
    return adapter
