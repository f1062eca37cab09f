"""The moelens adapter, against the ``observer`` contract of docs/interfaces.md ("Models").

``test_contract_*`` run on a stand-in that follows the contract literally, so a model that keeps
the contract but is not ``moelens.models`` is covered too; ``test_real_*`` run the same checks on
the real models.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from moelens.capture.adapters import get_adapter

from .adapter_sink import RecordingSink

H, E, D, K, FW, V = 16, 4, 8, 2, 24, 32


class _Dense(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.proj, self.observer = torch.nn.Linear(H, FW), torch.nn.Linear(FW, H), None

    def forward(self, x):
        h = F.gelu(self.fc(x.reshape(-1, H)))
        if self.observer is not None:
            self.observer(kind="ffn", hidden=h)
        return self.proj(h).reshape(x.shape)


class _MoE(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.router = torch.nn.Linear(H, E, bias=False)
        self.w_in = torch.nn.Parameter(torch.randn(E, D, H) * 0.3)
        self.w_dec = torch.nn.Parameter(torch.randn(E, H, D) * 0.3)
        self.dec_bias = torch.nn.Parameter(torch.randn(E, H) * 0.1)
        self.observer = None

    def decoder_cat(self):
        return torch.cat(list(self.w_dec), dim=1)  # [H, E·D]

    def forward(self, x):
        flat = x.reshape(-1, H)
        weights, ids = torch.softmax(self.router(flat), -1).topk(K, -1)
        token_idx = torch.arange(flat.shape[0]).repeat_interleave(K)
        expert_idx = ids.reshape(-1)
        hidden = F.relu(torch.einsum("rh,rdh->rd", flat[token_idx], self.w_in[expert_idx]))
        out = torch.einsum("rd,rhd->rh", hidden, self.w_dec[expert_idx]) + self.dec_bias[expert_idx]
        if self.observer is not None:
            self.observer(kind="moe", topk_ids=ids, topk_weights=weights, token_idx=token_idx,
                          expert_idx=expert_idx, hidden=hidden, out=out)
        y = torch.zeros_like(flat).index_add_(0, token_idx, out * weights.reshape(-1, 1))
        return y.reshape(x.shape)


class _StandIn(torch.nn.Module):
    """Smallest model with the moelens structure: ``transformer.h[i].mlp`` with an observer."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.config = SimpleNamespace(model_type="moelens", n_layer=3, n_embd=H, num_experts=E, top_k=K,
                                      expert_width=D, ffn_width=FW, expert_act="relu")
        self.wte, self.head = torch.nn.Embedding(V, H), torch.nn.Linear(H, V)
        mlps = [_Dense(), _MoE(), _MoE()]
        self.transformer = torch.nn.Module()
        self.transformer.h = torch.nn.ModuleList([torch.nn.Module() for _ in mlps])
        for block, mlp in zip(self.transformer.h, mlps):
            block.mlp = mlp
            block.forward = lambda x, mlp=mlp: x + mlp(x)

    def forward(self, input_ids):
        x = self.wte(input_ids)
        for block in self.transformer.h:
            x = block(x)
        return SimpleNamespace(logits=self.head(x))


def _check_adapter(model, ids):
    adapter = get_adapter(model)
    moe, dense = adapter.moe_layers(), adapter.dense_layers()
    outs = {}
    hooks = [adapter.decoder_layers()[i].mlp.register_forward_hook(
        lambda m, a, o, i=i: outs.__setitem__(i, o.reshape(-1, o.shape[-1])) and None) for i in moe + dense]
    with torch.no_grad():
        ref = model(ids).logits
        sink = RecordingSink()
        with adapter.attach(sink):
            got = model(ids).logits
    for h in hooks:
        h.remove()
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)
    n = ids.numel()
    for layer in moe:
        ids_, weights = sink.one("routing", layer)
        assert ids_.shape == (n, adapter.top_k(layer))
        token_idx, expert_idx, hidden, out = sink.one("expert_rows", layer)
        assert hidden.shape[1] == adapter.expert_width(layer) == model.config.expert_width
        rebuilt = torch.zeros(n, adapter.hidden_size)
        for e in expert_idx.unique().tolist():
            rows = expert_idx == e
            with torch.no_grad():
                rec = adapter.expert_output(layer, e, hidden[rows])
            torch.testing.assert_close(rec, out[rows], rtol=0, atol=1e-5)
            w = (weights * (ids_ == e)).sum(-1)[token_idx[rows], None]
            rebuilt.index_add_(0, token_idx[rows], rec * w)
        bias = adapter.block_bias(layer)
        if bias is not None:
            rebuilt += bias.detach()
        torch.testing.assert_close(rebuilt, outs[layer], rtol=0, atol=1e-5)
    for layer in dense:
        (hidden,) = sink.one("ffn", layer)
        assert hidden.shape == (n, adapter.ffn_width(layer)) == (n, model.config.ffn_width)
        with torch.no_grad():
            torch.testing.assert_close(adapter.ffn_output(layer, hidden), outs[layer], rtol=0, atol=1e-5)
    assert all(adapter.decoder_layers()[i].mlp.observer is None for i in moe + dense)
    sink = RecordingSink()
    with torch.no_grad(), adapter.attach(sink, spaces=["resid", "ffn", "expert"]), adapter.stop_after(0):
        model(ids)
    assert {layer for _, layer in sink.names()} == {0}
    return adapter


def test_contract_stand_in():
    model = _StandIn()
    adapter = _check_adapter(model, torch.randint(0, V, (2, 5), generator=torch.Generator().manual_seed(0)))
    assert adapter.moe_layers() == [1, 2] and adapter.dense_layers() == [0]
    assert adapter.expert_act_is_sparse(1)


@pytest.mark.parametrize("ffn,router", [("dense", "softmax"), ("moe", "softmax"), ("moe", "sparsity")])
def test_real_moelens_models(ffn, router):
    from moelens import models

    cfg = models.MoelensConfig(vocab_size=32, n_positions=16, n_layer=2, n_head=2, n_embd=16, bias=True,
                               dropout=0.0, ffn=ffn, ffn_width=32, ffn_act="gelu", num_experts=4, top_k=2,
                               expert_width=8, expert_act="relu", router=router, router_temperature=1.0,
                               aux_loss_coef=0.0)
    torch.manual_seed(0)
    model = models.MoelensForCausalLM(cfg).eval()
    with torch.no_grad():  # non-zero biases, so a missing bias term would show
        for name, p in model.named_parameters():
            if name.endswith(("b_dec", "b_enc", ".bias")):
                p.normal_(0, 0.1)
    adapter = _check_adapter(model, torch.randint(0, 32, (2, 6), generator=torch.Generator().manual_seed(0)))
    assert (adapter.moe_layers() == [0, 1]) == (ffn == "moe")
