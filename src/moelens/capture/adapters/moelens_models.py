"""Adapter for moelens's own models (``model_type="moelens"``).

These models announce their FFN internals through the ``observer`` attribute of each
``model.transformer.h[i].mlp`` (docs/interfaces.md, "Models"): a dense MLP calls
``observer(kind="ffn", hidden=...)``, a MoE layer ``observer(kind="moe", topk_ids, topk_weights,
token_idx, expert_idx, hidden, out)`` with the exact tensors of its forward, so capture needs no
recomputation and no knowledge of the layer's code.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import EXPERT_SPACES, Adapter, Handle, Sink
from .intervention import LogitsEdit, RoutingEdit
from .registry import register


@register("moelens")
class MoelensAdapter(Adapter):
    """moelens dense / top-k MoE / MoE-X models."""

    def decoder_layers(self) -> list[torch.nn.Module]:
        return list(self.model.transformer.h)

    @property
    def hidden_size(self) -> int:
        return int(self.config.n_embd)

    def mlp(self, layer: int) -> torch.nn.Module:
        """The FFN module (``DenseMLP`` or ``MoELayer``) of ``layer``."""
        return self.decoder_layers()[layer].mlp

    def _is_moe(self, layer: int) -> bool:
        return hasattr(self.mlp(layer), "decoder_cat")

    def moe_layers(self) -> list[int]:
        return [i for i in range(self.num_layers) if self._is_moe(i)]

    def num_experts(self, layer: int) -> int:
        return int(self.config.num_experts)

    def top_k(self, layer: int) -> int:
        return int(self.config.top_k)

    def expert_width(self, layer: int) -> int:
        return int(self.config.expert_width)

    def ffn_width(self, layer: int) -> int:
        return 0 if self._is_moe(layer) else int(self.config.ffn_width)

    def expert_act_is_sparse(self, layer: int) -> bool:
        return str(self.config.expert_act).lower() == "relu"

    # -- recompute helpers -----------------------------------------------------------------
    def expert_output(self, layer: int, expert: int, hidden: torch.Tensor) -> torch.Tensor:
        mlp = self.mlp(layer)
        if hasattr(mlp, "expert_output"):
            return mlp.expert_output(expert, hidden)
        width = self.expert_width(layer)
        w = mlp.decoder_cat()  # [n_embd, E·D]: W_dec_cat · z == output
        if w.shape[0] != self.hidden_size:
            w = w.t()
        out = hidden @ w[:, expert * width : (expert + 1) * width].t()
        bias = _expert_bias(mlp, self.num_experts(layer), self.hidden_size)  # per-expert, if any
        return out if bias is None else out + bias[expert]

    def block_bias(self, layer: int) -> torch.Tensor | None:
        return getattr(self.mlp(layer), "b_dec", None) if self._is_moe(layer) else None

    def shared_output(self, layer: int, hidden: torch.Tensor, block_input: torch.Tensor | None = None) -> torch.Tensor:
        raise ValueError("moelens models have no shared experts")

    def ffn_output(self, layer: int, hidden: torch.Tensor) -> torch.Tensor:
        mlp = self.mlp(layer)
        if self._is_moe(layer):
            raise ValueError(f"layer {layer} is a MoE layer, not a dense MLP")
        if hasattr(mlp, "output_from_hidden"):
            return mlp.output_from_hidden(hidden)
        if isinstance(getattr(mlp, "c_proj", None), torch.nn.Linear):
            return mlp.c_proj(hidden)
        width = int(self.config.ffn_width)
        downs = [m for m in mlp.modules() if isinstance(m, torch.nn.Linear) and m.in_features == width]
        if len(downs) != 1:
            raise ValueError("cannot find the dense MLP's down projection (one Linear from ffn_width to n_embd)")
        return downs[0](hidden)

    # -- intervention points ---------------------------------------------------------------
    def _moe_mlp(self, layer: int) -> torch.nn.Module:
        if not self._is_moe(layer):
            raise ValueError(f"layer {layer} of this moelens model is not a MoE layer")
        return self.mlp(layer)

    def edit_routing(self, layer: int, edit: RoutingEdit) -> Handle:
        """The layer's ``routing`` method (what its forward uses) is wrapped per instance; the
        ``add`` term joins the layer output through a forward hook."""
        mlp = self._moe_mlp(layer)
        if "routing" in mlp.__dict__:
            raise RuntimeError(f"layer {layer} routing is already edited; remove the other handle first")
        stock = mlp.routing
        pending: list[torch.Tensor | None] = []

        def routing(x: torch.Tensor) -> Any:
            r = stock(x)
            ids, weights, add = edit(r.topk_ids, r.topk_weights)
            pending.append(add)
            return type(r)(probs=r.probs, topk_ids=ids, topk_weights=weights)

        def post(module: torch.nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor | None:
            add = pending.pop() if pending else None
            return None if add is None else output + add.to(output.dtype).reshape(output.shape)

        mlp.routing = routing
        handle = Handle()
        handle.add(lambda: mlp.__dict__.pop("routing", None))
        handle.add(mlp.register_forward_hook(post, prepend=True))  # before any observer of the output
        return handle

    def edit_router_logits(self, layer: int, edit: LogitsEdit) -> Handle:
        """The router module returns the scores the top-k is taken from: a hook edits them."""
        router = self._moe_mlp(layer).router
        handle = Handle()
        handle.add(router.register_forward_hook(lambda m, a, out: edit(out)))
        return handle

    def final_norm(self) -> torch.nn.Module:
        return self.model.transformer.ln_f

    def ffn_block(self, layer: int) -> torch.nn.Module:
        return self.mlp(layer)

    # -- hooks -------------------------------------------------------------------------------
    def _attach_layer(self, handle: Handle, sink: Sink, layer: int, spaces: frozenset[str]) -> None:
        mlp = self.mlp(layer)
        moe = self._is_moe(layer)
        if (moe and not spaces & EXPERT_SPACES) or (not moe and "ffn" not in spaces):
            return
        if getattr(mlp, "observer", None) is not None:
            raise RuntimeError(f"layer {layer} already has an observer; remove the other handle first")

        def observer(kind: str, **t: Any) -> None:
            if kind == "ffn":
                sink.ffn(layer, t["hidden"].detach())
            elif kind == "moe":
                sink.routing(layer, t["topk_ids"].detach(), t["topk_weights"].detach())
                sink.expert_rows(
                    layer, t["token_idx"].detach(), t["expert_idx"].detach(), t["hidden"].detach(), t["out"].detach()
                )

        mlp.observer = observer
        handle.add(lambda: setattr(mlp, "observer", None))


def _expert_bias(mlp: torch.nn.Module, num_experts: int, hidden: int) -> torch.Tensor | None:
    """A per-expert output bias ``[E, H]`` among the layer's parameters, if it has one."""
    found = [p for n, p in mlp.named_parameters() if "bias" in n.rsplit(".", 1)[-1] and tuple(p.shape) == (num_experts, hidden)]
    return found[0] if len(found) == 1 else None
