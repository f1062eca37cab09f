"""Shared adapter for Hugging Face decoders: the common v5 fused-experts layout and dense MLPs.

Every HF family in transformers 5 keeps its decoder layers in a list, each with a feed-forward
block (``mlp``) that is either a dense MLP with a down projection or a MoE block with a router
and one fused ``experts`` module. Family adapters only set the attribute names below; shapes are
read from the modules themselves, so a model whose config was edited still reports what it runs.

How capture stays exact: the experts module of a captured layer gets an instance-level
``forward`` that runs :func:`tapped_experts_forward` (the stock grouped computation that also
yields the per-(token, expert) neurons) — patched per module rather than through the global
``ExpertsInterface``, so uncaptured layers and other models keep their own implementation and
nothing in the config changes. Dense neurons come from a pre-hook on the down projection (its
input is the post-activation hidden vector); shared experts from hooks on their modules.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from .base import EXPERT_SPACES, Adapter, Handle, Sink, first, flat
from .experts import expert_down, tapped_experts_forward
from .intervention import EditFirstLinear, LogitsEdit, RoutingEdit, patch_forward


class HFAdapter(Adapter):
    """Adapter for an HF decoder; subclasses override the class attributes that differ."""

    layers_path: ClassVar[tuple[str, ...]] = ("model", "layers")
    """Attribute path from the CausalLM to the list of decoder layers."""
    block_attr: ClassVar[str] = "mlp"
    """Attribute of a decoder layer holding its feed-forward block."""
    router_attr: ClassVar[str] = "gate"
    """Attribute of a MoE block holding the router module."""
    dense_down_attr: ClassVar[str] = "down_proj"
    """Attribute of a dense MLP holding the down projection (its input = hidden neurons)."""
    shared_attr: ClassVar[str | None] = None
    """Attribute of a MoE block holding the shared expert MLP, if the family has one."""
    shared_gate_attr: ClassVar[str | None] = None
    """Attribute of a MoE block holding a Linear(H, 1) whose sigmoid scales the shared expert."""
    final_norm_path: ClassVar[tuple[str, ...]] = ("model", "norm")
    """Attribute path from the CausalLM to the norm before the unembedding."""

    # -- structure -------------------------------------------------------------------------
    def decoder_layers(self) -> list[torch.nn.Module]:
        return list(functools.reduce(getattr, self.layers_path, self.model))

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    def block(self, layer: int) -> torch.nn.Module:
        """The feed-forward block (dense MLP or MoE block) of ``layer``."""
        return getattr(self.decoder_layers()[layer], self.block_attr)

    def experts(self, layer: int) -> torch.nn.Module | None:
        """The fused experts module of ``layer``, or None for a dense layer."""
        return getattr(self.block(layer), "experts", None)

    def router(self, layer: int) -> torch.nn.Module:
        """The router of MoE ``layer``; its forward returns ``(logits, topk_weights, topk_ids)``."""
        return getattr(self.block(layer), self.router_attr)

    def shared_expert(self, layer: int) -> torch.nn.Module | None:
        """The shared expert MLP of ``layer``, or None."""
        if self.shared_attr is None or self.experts(layer) is None:
            return None
        return getattr(self.block(layer), self.shared_attr, None)

    def moe_layers(self) -> list[int]:
        return [i for i in range(self.num_layers) if self.experts(i) is not None]

    def _moe(self, layer: int) -> torch.nn.Module:
        experts = self.experts(layer)
        if experts is None:
            raise ValueError(f"layer {layer} of this {self.model_type} model is not a MoE layer")
        return experts

    def num_experts(self, layer: int) -> int:
        return int(self._moe(layer).num_experts)

    def top_k(self, layer: int) -> int:
        self._moe(layer)
        k = getattr(self.router(layer), "top_k", None)
        return int(k if k is not None else self.config.num_experts_per_tok)

    def expert_width(self, layer: int) -> int:
        experts = self._moe(layer)
        return int(experts.down_proj.shape[1 if experts.is_transposed else 2])

    def shared_width(self, layer: int) -> int:
        shared = self.shared_expert(layer)
        return 0 if shared is None else _in_width(getattr(shared, self.dense_down_attr))

    def ffn_width(self, layer: int) -> int:
        if self.experts(layer) is not None:
            return 0
        return _in_width(getattr(self.block(layer), self.dense_down_attr))

    def expert_act_is_sparse(self, layer: int) -> bool:
        experts = self._moe(layer)
        gate_fn = getattr(type(experts), "_apply_gate", None)
        default_gate = getattr(gate_fn, "__name__", "") == "_default_apply_gate"
        return default_gate and isinstance(getattr(experts, "act_fn", None), torch.nn.ReLU)

    # -- recompute helpers -----------------------------------------------------------------
    def expert_output(self, layer: int, expert: int, hidden: torch.Tensor) -> torch.Tensor:
        return expert_down(self._moe(layer), expert, hidden)

    def shared_output(self, layer: int, hidden: torch.Tensor, block_input: torch.Tensor | None = None) -> torch.Tensor:
        shared = self.shared_expert(layer)
        if shared is None:
            raise ValueError(f"layer {layer} of this {self.model_type} model has no shared expert")
        out = getattr(shared, self.dense_down_attr)(hidden)
        if self.shared_gate_attr is None:
            return out
        if block_input is None:
            raise ValueError(f"{self.model_type} gates its shared expert by the block input: pass block_input")
        gate = getattr(self.block(layer), self.shared_gate_attr)
        return F.sigmoid(gate(block_input.reshape(-1, block_input.shape[-1]))) * out

    def ffn_output(self, layer: int, hidden: torch.Tensor) -> torch.Tensor:
        if self.experts(layer) is not None:
            raise ValueError(f"layer {layer} of this {self.model_type} model is a MoE layer, not a dense MLP")
        return getattr(self.block(layer), self.dense_down_attr)(hidden)

    # -- intervention points ---------------------------------------------------------------
    def edit_routing(self, layer: int, edit: RoutingEdit) -> Handle:
        """A pre-hook on the experts module edits the ``(ids, weights)`` every family passes it
        positionally; a forward hook adds ``add`` to the experts' weighted sum."""
        experts = self._moe(layer)
        pending: list[torch.Tensor | None] = []

        def pre(module: torch.nn.Module, args: tuple) -> tuple:
            hidden, ids, weights = args[:3]
            ids, weights, add = edit(ids, weights)
            pending.append(add)
            return (hidden, ids, weights, *args[3:])

        def post(module: torch.nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor | None:
            add = pending.pop() if pending else None
            return None if add is None else output + add.to(output.dtype)

        handle = Handle()
        handle.add(experts.register_forward_pre_hook(pre))
        handle.add(experts.register_forward_hook(post))
        return handle

    def edit_router_logits(self, layer: int, edit: LogitsEdit) -> Handle:
        """The router's forward runs under :class:`EditFirstLinear`: its first linear map (the raw
        logits, in every family) is edited, the rest of the family's routing runs as written."""
        router = self._router_of_moe(layer)
        stock = router.forward

        def forward(*args: Any, **kwargs: Any) -> Any:
            with EditFirstLinear(edit):
                return stock(*args, **kwargs)

        handle = Handle()
        handle.add(patch_forward(router, forward, f"layer {layer} router"))
        return handle

    def _router_of_moe(self, layer: int) -> torch.nn.Module:
        self._moe(layer)
        return self.router(layer)

    def final_norm(self) -> torch.nn.Module:
        return functools.reduce(getattr, self.final_norm_path, self.model)

    def ffn_block(self, layer: int) -> torch.nn.Module:
        return self.block(layer)

    # -- hooks -------------------------------------------------------------------------------
    def _attach_layer(self, handle: Handle, sink: Sink, layer: int, spaces: frozenset[str]) -> None:
        experts = self.experts(layer)
        if experts is None:
            if "ffn" in spaces:
                down = getattr(self.block(layer), self.dense_down_attr)
                handle.add(down.register_forward_pre_hook(_hidden_prehook(sink.ffn, layer)))
            return
        if spaces & EXPERT_SPACES:
            _patch_experts(handle, experts, sink, layer)
        shared = self.shared_expert(layer)
        if "shared" in spaces and shared is not None:
            gate = getattr(self.block(layer), self.shared_gate_attr) if self.shared_gate_attr else None
            self._hook_shared(handle, sink, layer, shared, gate)

    def _hook_shared(
        self, handle: Handle, sink: Sink, layer: int, shared: torch.nn.Module, gate: torch.nn.Module | None
    ) -> None:
        """Collect the shared expert's neurons, output and gate; emit once the block has run."""
        seen: dict[str, torch.Tensor] = {}

        def keep(name: str):
            def hook(module: torch.nn.Module, args: Any, output: Any = None) -> None:
                seen[name] = flat(args[0] if output is None else first(output))

            return hook

        def emit(module: torch.nn.Module, args: Any, output: Any) -> None:
            if "hidden" not in seen:
                return
            out = seen.pop("out")
            if gate is not None:
                out = F.sigmoid(seen.pop("gate")) * out
            sink.shared(layer, seen.pop("hidden"), out)

        down = getattr(shared, self.dense_down_attr)
        handle.add(down.register_forward_pre_hook(keep("hidden")))
        handle.add(shared.register_forward_hook(keep("out")))
        if gate is not None:
            handle.add(gate.register_forward_hook(keep("gate")))
        handle.add(self.block(layer).register_forward_hook(emit))


def _in_width(linear: torch.nn.Module) -> int:
    """Input width of an ``nn.Linear`` or a GPT-2 ``Conv1D`` (weight stored [in, out])."""
    if hasattr(linear, "in_features"):
        return int(linear.in_features)
    return int(linear.nx)


def _hidden_prehook(emit: Any, layer: int):
    def hook(module: torch.nn.Module, args: Any) -> None:
        emit(layer, flat(args[0]))

    return hook


def _patch_experts(handle: Handle, experts: torch.nn.Module, sink: Sink, layer: int) -> None:
    """Give ``experts`` an instance ``forward`` that emits routing and rows; undo restores it.

    On a model dispatched by accelerate (``--device_map``) the module's ``forward`` is already an
    instance attribute: accelerate's hook, which moves inputs to the execution device and loads
    offloaded weights, then calls ``_old_forward``. The tap replaces ``_old_forward`` there, so it
    runs with the weights in place and the hook still cleans up after it.
    """
    if experts.__dict__.get("_moelens_tapped"):
        raise RuntimeError(f"layer {layer} experts are already captured; remove the other handle first")
    attr = "_old_forward" if hasattr(experts, "_hf_hook") and "_old_forward" in experts.__dict__ else "forward"
    original = experts.__dict__.get(attr)

    def on_rows(ids, weights, token_idx, expert_idx, hidden, out) -> None:
        sink.routing(layer, ids, weights)
        sink.expert_rows(layer, token_idx, expert_idx, hidden, out)

    def forward(hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor) -> torch.Tensor:
        return tapped_experts_forward(experts, hidden_states, top_k_index, top_k_weights, on_rows)

    def undo() -> None:
        if original is None:
            experts.__dict__.pop(attr, None)
        else:
            setattr(experts, attr, original)
        experts.__dict__.pop("_moelens_tapped", None)

    setattr(experts, attr, forward)
    experts._moelens_tapped = True
    handle.add(undo)
