"""Hand-wired one-layer moelens models whose experts do known things, and a character tokenizer.

Both models have identity embeddings (token v is the unit vector e_v, the output head is tied to
it), attention that adds nothing, and ReLU experts reading the token's own coordinate after the
LayerNorm (about 5.5 there, slightly negative elsewhere), so what each expert does is set by
its decoder rows alone.
"""

from __future__ import annotations

import torch

CHARS = " abcdefghijklmnopqrstuvwxyz"
D = 32


def char_tokenizer():
    """One token per character of CHARS (ids 2..28; 0 pad, 1 unknown)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, **{c: i + 2 for i, c in enumerate(CHARS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")


def tid(c: str) -> int:
    return CHARS.index(c) + 2


def _blank(num_experts: int, top_k: int, seed: int):
    from moelens import models

    cfg = models.MoelensConfig(vocab_size=len(CHARS) + 2, n_positions=128, n_layer=1, n_head=2, n_embd=D,
                               bias=False, dropout=0.0, ffn="moe", num_experts=num_experts, top_k=top_k,
                               expert_width=D, expert_act="relu", router="softmax",
                               router_temperature=1.0, aux_loss_coef=0.0)
    torch.manual_seed(seed)  # test-only: seeded filler weights
    model = models.MoelensForCausalLM(cfg).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.transformer.wte.weight.zero_()
        model.transformer.wte.weight[:, : cfg.vocab_size].copy_(torch.eye(cfg.vocab_size, D)[:, : cfg.vocab_size])
        model.transformer.wpe.weight.zero_()
        block = model.transformer.h[0]
        block.attn.c_attn.weight.zero_()
        block.attn.c_proj.weight.zero_()
        mlp = block.mlp
        mlp.w_enc.copy_(torch.randn(mlp.w_enc.shape, generator=gen) * 0.2)
        mlp.w_dec.copy_(torch.randn(mlp.w_dec.shape, generator=gen) * 0.2)
        mlp.router.weight.copy_(torch.randn(mlp.router.weight.shape, generator=gen) * 0.3)
    return model


def trigger_model(trigger: str, target: str, expert: int = 3, seed: int = 0):
    """4 experts, top-2: ``trigger`` routes to ``expert`` (and nothing else does), which writes
    the ``target`` direction; the other experts are random filler."""
    model = _blank(4, 2, seed)
    mlp = model.transformer.h[0].mlp
    with torch.no_grad():
        row = torch.zeros(D)  # the LayerNorm centres its output: only the trigger's coordinate
        row[tid(trigger)] = 20.0  # is high (+5.6 on the trigger, -0.18 on any other token)
        mlp.router.weight[expert] = row
        mlp.w_enc[expert] = torch.eye(D)
        mlp.w_dec[expert].zero_()
        mlp.w_dec[expert][:, tid(target)] = 1.0
    return model


A = "abcdefghijkl"
B = "mnopqrstuvwx"


def domain_model(seed: int = 0):
    """8 experts, top-2: letters of A route to experts 0 and 1, letters of B to 2 and 3; each pair
    writes the next letter of its domain (cyclically), so text that walks a domain's alphabet is
    predicted by that domain's experts only. Experts 4..7 are never routed."""
    model = _blank(8, 2, seed)
    mlp = model.transformer.h[0].mlp
    with torch.no_grad():
        mlp.router.weight.zero_()
        for pair, (own, other) in enumerate(((A, B), (B, A))):
            row = torch.zeros(D)
            row[[tid(c) for c in own]] = 3.0
            row[[tid(c) for c in other]] = -3.0
            for e in (2 * pair, 2 * pair + 1):
                mlp.router.weight[e] = row
                mlp.w_enc[e] = torch.eye(D)
                mlp.w_dec[e].zero_()
                for i, c in enumerate(own):
                    mlp.w_dec[e][tid(c), tid(own[(i + 1) % len(own)])] = 1.0
    return model


def walk(letters: str, start: int, n: int) -> str:
    """``n`` letters walking ``letters`` cyclically from index ``start``."""
    return "".join(letters[(start + i) % len(letters)] for i in range(n))
