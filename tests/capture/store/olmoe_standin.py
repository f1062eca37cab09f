"""A small adapter stand-in for transformers' OLMoE, used until ``moelens.capture.adapters`` lands.

It follows the Adapters contract of docs/interfaces.md: a forward hook on ``mlp.gate`` reports
the routing exactly as the model uses it; the experts module's forward is replaced (per instance)
by a loop that computes the same result as the eager implementation while reporting each
(token, expert) row's hidden vector act(gate)*up and output before the router weight; a hook on
the decoder layer reports the residual stream. Test-only code: never imported by ``src``.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F


class _StopForward(Exception):
    pass


class _Handles:
    def __init__(self, undo):
        self.undo = undo

    def remove(self) -> None:
        for fn in reversed(self.undo):
            fn()
        self.undo = []


class OlmoeStandIn:
    def __init__(self, model, sparse: bool = False):
        self.model = model
        self.cfg = model.config
        self.blocks = model.model.layers
        self.sparse = sparse

    num_layers = property(lambda self: self.cfg.num_hidden_layers)
    hidden_size = property(lambda self: self.cfg.hidden_size)

    def moe_layers(self):
        return list(range(self.cfg.num_hidden_layers))

    def dense_layers(self):
        return []

    def num_experts(self, l):
        return self.cfg.num_experts

    def top_k(self, l):
        return self.cfg.num_experts_per_tok

    def expert_width(self, l):
        return self.cfg.intermediate_size

    def shared_width(self, l):
        return 0

    def ffn_width(self, l):
        return 0

    def expert_act_is_sparse(self, l):
        return self.sparse

    def attach(self, sink, layers, spaces):
        undo = []
        for l in layers:
            block = self.blocks[l]
            mlp = block.mlp
            h = mlp.gate.register_forward_hook(lambda m, i, o, l=l: sink.routing(l, o[2], o[1]))
            undo.append(h.remove)
            mlp.experts.forward = self._capturing_experts(mlp.experts, sink, l)
            undo.append(lambda e=mlp.experts: delattr(e, "forward"))
            h = block.register_forward_hook(
                lambda m, i, o, l=l: sink.resid(l, (o[0] if isinstance(o, tuple) else o)))
            undo.append(h.remove)
        return _Handles(undo)

    @staticmethod
    def _capturing_experts(experts, sink, layer):
        def forward(hidden_states, top_k_index, top_k_weights):
            N, k = top_k_index.shape
            flat_e = top_k_index.reshape(-1)
            order = torch.argsort(flat_e, stable=True)
            e_sorted = flat_e[order]
            t_sorted = torch.arange(N, device=flat_e.device).repeat_interleave(k)[order]
            w_sorted = top_k_weights.reshape(-1)[order]
            counts = torch.bincount(e_sorted, minlength=experts.num_experts).tolist()
            hids, outs, a = [], [], 0
            for e, c in enumerate(counts):
                if c:
                    x = hidden_states[t_sorted[a:a + c]]
                    gate, up = F.linear(x, experts.gate_up_proj[e]).chunk(2, dim=-1)
                    hids.append(experts.act_fn(gate) * up)
                    outs.append(F.linear(hids[-1], experts.down_proj[e]))
                    a += c
            hid, out = torch.cat(hids), torch.cat(outs)
            final = torch.zeros_like(hidden_states)
            final.index_add_(0, t_sorted, (out * w_sorted[:, None]).to(final.dtype))
            sink.expert_rows(layer, t_sorted, e_sorted, hid, out)
            return final

        return forward

    @contextlib.contextmanager
    def stop_after(self, layer):
        def stop(m, i, o):
            raise _StopForward

        h = self.blocks[layer].register_forward_hook(stop)
        try:
            yield
        except _StopForward:
            pass
        finally:
            h.remove()


def make_adapter(model):
    """Factory for ``--adapter olmoe_standin:make_adapter``."""
    return OlmoeStandIn(model)


def make_sparse_adapter(model):
    """Same, declaring ReLU-like sparse experts (forces the COO layout)."""
    return OlmoeStandIn(model, sparse=True)


class _DropsRouting(OlmoeStandIn):
    """A faulty adapter: never reports layer 1's routing (capture must refuse the shard)."""

    def attach(self, sink, layers, spaces):
        class Filter:
            def __getattr__(self, name):
                fn = getattr(sink, name)
                return (lambda layer, *a: None if layer == 1 else fn(layer, *a)) if name == "routing" else fn

        return super().attach(Filter(), layers, spaces)


def make_faulty_adapter(model):
    return _DropsRouting(model)
