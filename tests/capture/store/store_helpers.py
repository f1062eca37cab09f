"""Shared helpers of the store tests: the adapter choice, a tiny OLMoE, a char tokenizer.

:data:`ADAPTER` is None: the tests capture through ``moelens.capture.adapters.get_adapter``; the
test-only adapters in ``olmoe_standin.py`` serve fault injection (a sparse and a faulty one). Kept out of conftest.py (which holds only fixtures):
every test folder's conftest is imported under the one module name ``conftest``, so
``from conftest import ...`` would find whichever folder's conftest loaded last.
"""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent

ADAPTER: str | None = None

TEXT = ("the quick brown fox jumps over the lazy dog. pack my box with five dozen liquor jugs.\n"
        "how vexingly quick daft zebras jump; sphinx of black quartz, judge my vow!\n")


def char_tokenizer(text: str):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1}
    for c in sorted(set(text)):
        vocab[c] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")


def tiny_olmoe(vocab_size: int, act: str = "silu", seed: int = 0):
    import torch
    from transformers import OlmoeConfig, OlmoeForCausalLM

    cfg = OlmoeConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=16,
                      num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
                      num_experts=8, num_experts_per_tok=2, max_position_embeddings=128,
                      hidden_act=act, pad_token_id=0, bos_token_id=1, eos_token_id=1)
    torch.manual_seed(seed)  # test-only: seeded tiny weights
    return OlmoeForCausalLM(cfg).eval()


def subprocess_env() -> dict[str, str]:
    """clitools.cli_env plus this folder on PYTHONPATH (for the stand-in adapter)."""
    from clitools import cli_env

    return cli_env({"PYTHONPATH": os.pathsep.join([str(HERE.parents[2] / "src"), str(HERE)])})
