"""The adapter contract: what capture needs to know about a model, independent of its family.

An adapter answers shape questions (layers, experts, widths) and installs hooks that turn one
forward pass into calls on a *sink* (see :class:`Sink`), with tokens flattened to N = batch·seq.
Hooks never change what the model computes; they only observe tensors the model already made.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, Protocol, Self

import torch

from moelens.errors import ConfigError

from . import intervention
from .intervention import LogitsEdit, RoutingEdit

SPACES = ("expert", "expert_gate", "expert_out", "shared", "ffn", "resid")
"""Unit spaces an adapter can be asked for (see DESIGN vocabulary)."""
EXPERT_SPACES = frozenset({"expert", "expert_gate", "expert_out"})
"""Spaces derived from routing + expert rows; any of them makes the adapter emit both."""


class Sink(Protocol):
    """Receiver of captured tensors; every tensor is detached, tokens flattened to N."""

    def routing(self, layer: int, topk_ids: torch.Tensor, topk_weights: torch.Tensor) -> None:
        """Top-k expert ids ``[N, k]`` and weights ``[N, k]`` exactly as the experts used them."""

    def expert_rows(
        self, layer: int, token_idx: torch.Tensor, expert_idx: torch.Tensor, hidden: torch.Tensor, out: torch.Tensor
    ) -> None:
        """(token, expert) rows: hidden neurons ``[R, D]`` and output before router weight ``[R, H]``."""

    def shared(self, layer: int, hidden: torch.Tensor, out: torch.Tensor) -> None:
        """Shared-expert neurons ``[N, Ds]`` and its output ``[N, H]`` after any shared gate."""

    def ffn(self, layer: int, hidden: torch.Tensor) -> None:
        """Dense MLP hidden neurons ``[N, F]`` (post-activation, what the down projection reads)."""

    def resid(self, layer: int, hidden: torch.Tensor) -> None:
        """Residual stream ``[N, H]`` after the layer."""


class StopForward(Exception):
    """Raised by a :meth:`Adapter.stop_after` hook once the last needed layer has run."""


class Handle:
    """Removable set of hooks/patches returned by :meth:`Adapter.attach`."""

    def __init__(self) -> None:
        self._undo: list[Any] = []

    def add(self, undo: Any) -> None:
        """Register a torch hook handle (``.remove()``) or a zero-argument undo callable."""
        self._undo.append(undo)

    def remove(self) -> None:
        """Undo everything, newest first; calling it twice is harmless."""
        while self._undo:
            undo = self._undo.pop()
            if hasattr(undo, "remove"):
                undo.remove()
            else:
                undo()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def flat(x: torch.Tensor) -> torch.Tensor:
    """``[..., W]`` → detached ``[N, W]``."""
    return x.detach().reshape(-1, x.shape[-1])


def first(output: Any) -> torch.Tensor:
    """The hidden-states tensor of a module output that may be a tuple."""
    return output[0] if isinstance(output, (tuple, list)) else output


class Adapter:
    """Base of every family adapter; subclasses say where things are, this class does the rest.

    Subclasses implement the shape queries and :meth:`_attach_layer`; the base validates
    ``layers``/``spaces``, installs the residual-stream hooks and provides :meth:`stop_after`.
    """

    model_type: ClassVar[str] = ""
    """``config.model_type`` this adapter handles (set by :func:`register`)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.config = model.config

    # -- structure -------------------------------------------------------------------------
    def decoder_layers(self) -> list[torch.nn.Module]:
        """The decoder layer modules, in order."""
        raise NotImplementedError

    @property
    def num_layers(self) -> int:
        return len(self.decoder_layers())

    @property
    def hidden_size(self) -> int:
        raise NotImplementedError

    def moe_layers(self) -> list[int]:
        """Layers whose FFN is a mixture of experts."""
        raise NotImplementedError

    def dense_layers(self) -> list[int]:
        """Layers whose FFN is a dense MLP."""
        moe = set(self.moe_layers())
        return [i for i in range(self.num_layers) if i not in moe]

    def num_experts(self, layer: int) -> int:
        raise NotImplementedError

    def top_k(self, layer: int) -> int:
        raise NotImplementedError

    def expert_width(self, layer: int) -> int:
        raise NotImplementedError

    def shared_width(self, layer: int) -> int:
        """Hidden width of the layer's shared expert(s), 0 if none."""
        return 0

    def ffn_width(self, layer: int) -> int:
        """Hidden width of the layer's dense MLP, 0 for a MoE layer."""
        raise NotImplementedError

    def expert_act_is_sparse(self, layer: int) -> bool:
        """Whether expert neurons are exactly zero on many tokens (ReLU-style experts)."""
        return False

    # -- recompute helpers (conformance) ---------------------------------------------------
    def expert_output(self, layer: int, expert: int, hidden: torch.Tensor) -> torch.Tensor:
        """Expert ``expert``'s output (before router weight) from its captured neurons."""
        raise NotImplementedError

    def shared_output(self, layer: int, hidden: torch.Tensor, block_input: torch.Tensor | None = None) -> torch.Tensor:
        """Shared-expert output from its neurons; families with a shared gate need ``block_input``."""
        raise NotImplementedError

    def ffn_output(self, layer: int, hidden: torch.Tensor) -> torch.Tensor:
        """Dense MLP output from its captured neurons."""
        raise NotImplementedError

    def block_bias(self, layer: int) -> torch.Tensor | None:
        """A constant ``[H]`` the MoE block adds to its weighted expert sum (moelens ``b_dec``), or None.

        MoE block output = Σ_slots weight · expert_output + shared out + block_bias.
        """
        return None

    # -- intervention points (moelens.analysis.causal; see .intervention) --------------------
    def edit_routing(self, layer: int, edit: RoutingEdit) -> Handle:
        """Run ``edit(ids, weights) -> (ids, weights, add)`` on MoE ``layer``'s routing after the
        family's router made it and before the experts use it; ``add`` ([N, H] or None) joins the
        routed experts' weighted sum. Shared experts and the router itself are untouched."""
        raise NotImplementedError

    def edit_router_logits(self, layer: int, edit: LogitsEdit) -> Handle:
        """Run ``edit(logits [N, E]) -> logits`` on MoE ``layer``'s raw router logits; the
        family's own scoring, correction bias, group top-k and normalisation then run on them."""
        raise NotImplementedError

    def run_from(self, layer: int, hidden: torch.Tensor) -> contextlib.AbstractContextManager[None]:
        """Context manager: forwards skip layers ``0..layer`` and continue from ``hidden`` [B, T, H]
        (the residual stream after ``layer``) for the batch the model is called with."""
        self._check_layers([layer])
        return intervention.run_from(self.decoder_layers(), layer, hidden)

    def final_norm(self) -> torch.nn.Module:
        """The norm applied to the last layer's residual stream before the unembedding."""
        raise NotImplementedError

    def final_norm_linear(self, resid: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
        """``part``'s share of ``final_norm(resid)`` with the norm's scale frozen at the final
        residual ``resid`` (linear in ``part``; see :func:`.intervention.frozen_norm`)."""
        return intervention.frozen_norm(self.final_norm(), resid, part)

    def unembedding(self) -> torch.Tensor:
        """The unembedding matrix ``[V, H]`` (logits = ``logit_scale() · W_U · final_norm(x)``
        plus any output bias, which belongs to no component)."""
        return self.model.get_output_embeddings().weight

    def logit_scale(self) -> float:
        """Factor the model applies to ``W_U · final_norm(x)`` to get its logits."""
        return 1.0

    def ffn_block(self, layer: int) -> torch.nn.Module:
        """The feed-forward block of ``layer`` (dense MLP or MoE block, shared experts included);
        its output (first element if a tuple) is what :meth:`residual_update` takes."""
        raise NotImplementedError

    def residual_update(self, layer: int, block_out: torch.Tensor) -> torch.Tensor:
        """What decoder layer ``layer`` adds to the residual stream, given its FFN block output:
        the output itself in pre-norm families; families with a residual multiplier or a norm
        after the block override this."""
        return block_out

    def residual_update_linear(self, layer: int, block_out: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
        """``part``'s share of :meth:`residual_update` for the block output ``block_out`` (exact
        where the update is linear; a post-block norm's scale is frozen at ``block_out``)."""
        return part

    # -- hooks -------------------------------------------------------------------------------
    def attach(self, sink: Sink, layers: Iterable[int] | None = None, spaces: Iterable[str] = SPACES) -> Handle:
        """Install capture hooks for ``layers`` (all if None) and ``spaces``; returns a handle."""
        layer_list = self._check_layers(layers)
        wanted = self._check_spaces(spaces)
        handle = Handle()
        try:
            blocks = self.decoder_layers()
            for layer in layer_list:
                self._attach_layer(handle, sink, layer, wanted)
                if "resid" in wanted:  # prepend: runs before a stop_after hook, whichever came first
                    handle.add(blocks[layer].register_forward_hook(_resid_hook(sink, layer), prepend=True))
        except BaseException:
            handle.remove()
            raise
        return handle

    def _attach_layer(self, handle: Handle, sink: Sink, layer: int, spaces: frozenset[str]) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def stop_after(self, layer: int) -> Iterator[None]:
        """Stop the forward once ``layer`` has run; the :class:`StopForward` it raises is swallowed here."""
        self._check_layers([layer])

        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            raise StopForward(layer)

        h = self.decoder_layers()[layer].register_forward_hook(hook)
        try:
            yield
        except StopForward:
            pass
        finally:
            h.remove()

    # -- validation ------------------------------------------------------------------------
    def _check_layers(self, layers: Iterable[int] | None) -> list[int]:
        n = self.num_layers
        if layers is None:
            return list(range(n))
        out = sorted({int(i) for i in layers})
        bad = [i for i in out if not 0 <= i < n]
        if bad:
            raise ConfigError(f"layer(s) {bad} out of range: this {self.model_type} model has layers 0..{n - 1}")
        return out

    @staticmethod
    def _check_spaces(spaces: Iterable[str]) -> frozenset[str]:
        wanted = frozenset(spaces)
        bad = sorted(wanted - set(SPACES))
        if bad:
            raise ConfigError(f"unknown unit space(s) {bad}; choose from {', '.join(SPACES)}")
        return wanted


def _resid_hook(sink: Sink, layer: int):
    def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
        sink.resid(layer, flat(first(output)))

    return hook
