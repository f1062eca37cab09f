"""Intervention points: the few places where an analysis may *change* what a model computes.

Capture hooks only observe. Causal analyses must edit routing and re-run parts of a model, and
doing that correctly needs the same family knowledge capture needs (where the router and the
experts are, how the router's logits become top-k weights, what the final norm is). So that
knowledge stays here, in the adapters, behind a narrow set of points every adapter exposes
(docs/interfaces.md, "Adapters"); ``moelens.analysis.causal`` composes them and never touches a
family's modules itself:

- ``edit_routing(layer, edit)``: ``edit(ids [N,k], weights [N,k]) -> (ids, weights, add)`` runs
  between the family's router and its experts, so the router's own top-k, correction biases,
  group top-k and scaling have already happened and shared experts are untouched; ``add``
  ([N, H] or None) is added to the routed experts' weighted sum (mean-output replacement).
- ``edit_router_logits(layer, edit)``: ``edit(logits [N, E]) -> logits`` on the router's raw
  logits, *before* the family's own scoring and top-k, which then run as the family defines.
- ``run_from(layer, hidden)``: the next forward skips layers ``0..layer`` and continues from
  ``hidden`` as the residual stream after ``layer`` (a sweep shares one prefix computation).
- ``final_norm()``, ``final_norm_linear(resid, part)``, ``unembedding()``, ``logit_scale()`` and
  ``residual_scale(layer)``: what direct logit attribution and the logit lens need.

The helpers below are family-independent; adapters call them with their own modules.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

RoutingEdit = Callable[[torch.Tensor, torch.Tensor], "tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]"]
"""``(topk_ids [N,k], topk_weights [N,k]) -> (ids, weights, add [N,H] | None)``."""
LogitsEdit = Callable[[torch.Tensor], torch.Tensor]
"""``router logits [N, E] -> router logits [N, E]``."""


class EditFirstLinear(TorchFunctionMode):
    """Apply ``edit`` to the result of the first ``F.linear`` run while the mode is active.

    Every supported router computes its raw logits with one linear map of its weight before
    anything else (softmax, sigmoid, correction bias, group top-k); editing that one result lets
    the family's own routing code run unchanged on the edited logits.
    """

    def __init__(self, edit: LogitsEdit):
        super().__init__()
        self.edit = edit
        self.done = False

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if not self.done and func is F.linear:
            self.done = True
            flat = out.reshape(-1, out.shape[-1])
            out = self.edit(flat).reshape(out.shape)
        return out


def patch_forward(module: torch.nn.Module, forward: Callable[..., Any], what: str) -> Callable[[], None]:
    """Give ``module`` an instance-level ``forward``; returns the undo. Refuses a second patch."""
    if "forward" in module.__dict__:
        raise RuntimeError(f"{what} is already patched (by a capture or another intervention); "
                           "remove the other handle first")
    module.forward = forward
    return lambda: module.__dict__.pop("forward", None)


def _hidden_arg(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


@contextlib.contextmanager
def run_from(layers: list[torch.nn.Module], layer: int, hidden: torch.Tensor) -> Iterator[None]:
    """Make the next forwards skip decoder layers ``0..layer`` and continue from ``hidden``.

    Layers before ``layer`` return their input unchanged (no computation); ``layer`` returns
    ``hidden`` (shape ``[B, T, H]``, the batch the model is called with). The embeddings, masks
    and position tables are still computed by the model itself, so every later layer receives
    exactly the arguments a full forward would give it.
    """
    if not 0 <= layer < len(layers):
        raise ValueError(f"layer {layer} out of range 0..{len(layers) - 1}")
    undo: list[Callable[[], None]] = []

    def skip(*args: Any, **kwargs: Any) -> torch.Tensor:
        return _hidden_arg(args, kwargs)

    def inject(*args: Any, **kwargs: Any) -> torch.Tensor:
        given = _hidden_arg(args, kwargs)
        if given.shape != hidden.shape:
            raise ValueError(f"run_from: the model was called on shape {tuple(given.shape)} but the "
                             f"hidden states given have shape {tuple(hidden.shape)}")
        return hidden.to(given.dtype)

    try:
        for i in range(layer + 1):
            undo.append(patch_forward(layers[i], inject if i == layer else skip, f"decoder layer {i}"))
        yield
    finally:
        for u in reversed(undo):
            u()


def norm_kind(norm: torch.nn.Module) -> tuple[str, torch.Tensor | None, torch.Tensor | None, float]:
    """``(kind, weight, bias, eps)`` of a final norm: kind ``rms`` (x / rms(x) · w) or ``layer``
    ((x − mean) / std · w + b). Raises for a norm whose form is not known."""
    if hasattr(norm, "variance_epsilon"):  # the HF RMSNorm classes
        return "rms", norm.weight, None, float(norm.variance_epsilon)
    if isinstance(norm, torch.nn.LayerNorm):
        return "layer", norm.weight, norm.bias, float(norm.eps)
    if type(norm).__name__ == "OlmoLayerNorm":  # OLMo-1: a LayerNorm without parameters, eps 1e-5
        return "layer", None, None, 1e-5
    raise NotImplementedError(f"final norm {type(norm).__name__} has no known form; add it to "
                              "moelens.capture.adapters.intervention.norm_kind")


def frozen_norm(norm: torch.nn.Module, resid: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """What ``part`` contributes to ``norm(resid)`` with the norm's scale frozen at ``resid``.

    The map is linear in ``part`` (the usual direct-logit-attribution linearisation), and the
    parts of a residual sum to ``norm(resid) − norm(0)``: the scale is the one of the *final*
    residual stream at that position, never of the layer the part came from. ``resid`` is
    ``[..., H]``; ``part`` broadcasts against it.
    """
    kind, weight, _bias, eps = norm_kind(norm)
    x = resid.float()
    p = part.float()
    if kind == "rms":
        scale = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    else:
        scale = torch.rsqrt(x.var(-1, unbiased=False, keepdim=True) + eps)
        p = p - p.mean(-1, keepdim=True)
    out = p * scale
    return out * weight.float() if weight is not None else out
