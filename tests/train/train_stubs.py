"""Test-only stand-ins for the model and data subsystems (until ``moelens.models`` and
``moelens.data`` are merged), written to the contracts in docs/interfaces.md:

- :class:`TinyLM`: a GPT-like model with ``forward(input_ids, attention_mask=None, labels=None)``
  returning ``.loss`` (CE + aux), ``.logits``, ``.aux_loss``; ``transformer.h[i].mlp`` is a dense
  MLP or a :class:`FakeMoE` exposing ``last_stats`` (``load``, ``router_entropy``, ``l0``);
  ``save_pretrained`` / ``from_pretrained`` for a directory.
- :func:`write_token_dir` writes a token directory in the documented format with np.memmap, and
  :class:`StubTokens` reads one (``.meta``, ``.train``, ``.val``, ``.tokenizer()``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn

DEFAULTS = dict(vocab_size=32, n_positions=128, n_layer=2, n_head=2, n_embd=32, bias=True,
                dropout=0.0, ffn="moe", ffn_width=64, num_experts=4, top_k=2, expert_width=16,
                aux_loss_coef=0.01)


class Output(dict):
    """A dict with attribute access, like transformers' ModelOutput (DDP finds tensors in it)."""

    __getattr__ = dict.__getitem__


class FakeMoE(nn.Module):
    """Top-k softmax router over ReLU experts (all experts computed; unrouted ones gated 0)."""

    def __init__(self, c: SimpleNamespace):
        super().__init__()
        self.k, self.coef, e, d, w = c.top_k, c.aux_loss_coef, c.num_experts, c.n_embd, c.expert_width
        self.router = nn.Linear(d, e, bias=False)
        self.w_enc = nn.Parameter(torch.randn(e, d, w) / math.sqrt(d))
        self.w_dec = nn.Parameter(torch.randn(e, w, d) / math.sqrt(w))
        self.last_stats: dict = {}
        self.aux_loss = torch.zeros(())

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        probs = self.router(x).float().softmax(-1)
        top_w, top_i = probs.topk(self.k, dim=-1)
        gates = torch.zeros_like(probs).scatter(1, top_i, top_w / top_w.sum(-1, keepdim=True))
        h = torch.relu(torch.einsum("nd,edh->neh", x, self.w_enc))
        y = torch.einsum("neh,ehd->ned", h, self.w_dec)
        out = (gates.unsqueeze(-1).to(y.dtype) * y).sum(1)
        n, e = probs.shape
        load = torch.zeros(e).index_add_(0, top_i.reshape(-1).cpu(), torch.ones(top_i.numel())) / top_i.numel()
        self.aux_loss = self.coef * e * (load.to(probs.device) * probs.mean(0)).sum()
        entropy = -(probs * probs.clamp_min(1e-9).log()).sum(-1).mean()
        l0 = ((h > 0).float().sum(-1) * (gates > 0).float()).sum(-1).mean()
        self.last_stats = {"load": load.tolist(), "router_entropy": entropy.item(), "l0": l0.item()}
        return out.reshape(shape)


class DenseMLP(nn.Module):
    def __init__(self, c: SimpleNamespace):
        super().__init__()
        self.up = nn.Linear(c.n_embd, c.ffn_width, bias=c.bias)
        self.down = nn.Linear(c.ffn_width, c.n_embd, bias=c.bias)

    def forward(self, x):
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    def __init__(self, c: SimpleNamespace):
        super().__init__()
        self.n_head, self.dropout = c.n_head, c.dropout
        self.ln_1 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.qkv = nn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.proj = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.ln_2 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.mlp = FakeMoE(c) if c.ffn == "moe" else DenseMLP(c)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln_1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, t, d)))
        return x + self.drop(self.mlp(self.ln_2(x)))


class TinyLM(nn.Module):
    """A stand-in for ``MoelensForCausalLM`` with the same forward/save contract."""

    def __init__(self, **kw):
        super().__init__()
        self.config = c = SimpleNamespace(**{**DEFAULTS, **kw})
        self.transformer = nn.Module()
        self.transformer.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.transformer.wpe = nn.Embedding(c.n_positions, c.n_embd)
        self.transformer.h = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.transformer.ln_f = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied, like GPT-2

    def forward(self, input_ids, attention_mask=None, labels=None):
        tr = self.transformer
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = tr.wte(input_ids) + tr.wpe(pos)
        for block in tr.h:
            x = block(x)
        logits = self.lm_head(tr.ln_f(x))
        aux = sum((b.mlp.aux_loss for b in tr.h if isinstance(b.mlp, FakeMoE)), torch.zeros(()))
        loss = None
        if labels is not None:  # Hugging Face convention: labels are shifted inside
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                   labels[:, 1:].reshape(-1)) + aux
        return Output(loss=loss, logits=logits, aux_loss=aux)

    def save_pretrained(self, path):
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps({"model_type": "moelens_stub",
                                                      **vars(self.config)}))
        save_model(self, str(path / "model.safetensors"))

    @classmethod
    def from_pretrained(cls, path):
        path = Path(path)
        kw = json.loads((path / "config.json").read_text())
        kw.pop("model_type")
        model = cls(**kw)
        load_model(model, str(path / "model.safetensors"))
        return model


def build_stub_model(spec, vocab_size: int, ctx: int) -> TinyLM:
    """``Backend.build_model`` for the stand-in: preset dense-* → dense MLP, else a fake MoE."""
    kw = {k: v for k, v in spec.overrides().items() if k in DEFAULTS}
    kw.setdefault("ffn", "dense" if spec.preset.startswith("dense") else "moe")
    kw.setdefault("vocab_size", vocab_size)
    kw["n_positions"] = max(kw.get("n_positions", DEFAULTS["n_positions"]), ctx)
    return TinyLM(**kw)


def load_stub_model(path: Path) -> TinyLM:
    from moelens.errors import CheckpointError

    if not (Path(path) / "config.json").is_file():
        raise CheckpointError(f"{path} is not a saved model directory (no config.json)")
    return TinyLM.from_pretrained(path)


class StubTokens:
    """Reads a token directory (``moelens.data.tokens.TokenData`` stand-in)."""

    def __init__(self, path: Path):
        path = Path(path)
        self.meta = json.loads((path / "meta.json").read_text())
        dtype = np.dtype(self.meta["dtype"])
        self.train = np.memmap(path / "train.bin", dtype=dtype, mode="r")
        self.val = np.memmap(path / "val.bin", dtype=dtype, mode="r")

    def tokenizer(self):
        return None


def markov_tokens(n: int, vocab: int, seed: int, noise: float = 0.1) -> np.ndarray:
    """A learnable stream: next = (5*cur + 3) % vocab, replaced by a random token w.p. ``noise``."""
    rng = np.random.default_rng(seed)
    out = np.empty(n, dtype=np.int64)
    out[0] = 0
    jumps, rand = rng.random(n) < noise, rng.integers(0, vocab, n)
    for i in range(1, n):
        out[i] = rand[i] if jumps[i] else (5 * out[i - 1] + 3) % vocab
    return out


def word_level_tokenizer_json(vocab: int) -> str:
    """A real tokenizer.json (one word-level token per id) for text token directories."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit

    tok = Tokenizer(WordLevel({f"w{i}": i for i in range(vocab)}, unk_token="w0"))
    tok.pre_tokenizer = WhitespaceSplit()
    return tok.to_str()


def write_token_dir(path: Path, n_train: int = 20000, n_val: int = 4000, vocab: int = 32,
                    seed: int = 0, kind: str = "chess", block_size: int | None = 100) -> Path:
    """A token directory in the documented format (meta.json, train.bin, val.bin; text: a
    tokenizer.json). Chess data needs a block_size dividing both splits."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name, n, s in (("train", n_train, seed), ("val", n_val, seed + 1)):
        ids = markov_tokens(n, vocab, s)
        mm = np.memmap(path / f"{name}.bin", dtype=np.uint8, mode="w+", shape=(n,))
        mm[:] = ids
        mm.flush()
    if kind == "text":
        (path / "tokenizer.json").write_text(word_level_tokenizer_json(vocab))
    meta = {"format": "moelens-tokens", "version": 1, "kind": kind, "dtype": "uint8",
            "vocab_size": vocab, "block_size": block_size,
            "tokenizer": "chess" if kind == "chess" else "tokenizer.json",
            "n_train": n_train, "n_val": n_val, "source": {"generator": "markov"}, "seed": seed}
    (path / "meta.json").write_text(json.dumps(meta))
    return path
