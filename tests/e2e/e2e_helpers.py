"""Builders for the end-to-end tests: a small seeded text corpus, a byte-level BPE tokenizer
trained on it, and tiny seeded Hugging Face models (an OLMoE MoE and a Llama dense model)
saved with that tokenizer, so ``moelens capture`` loads them as it would a hub checkpoint.

(A plain module, not the conftest: every folder's conftest is imported as ``conftest``.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_NAMES = ["Alice", "Bob", "Carol", "Dave", "Paris", "London", "Monday", "March", "Python", "Linux"]
_NOUNS = ["cat", "house", "river", "table", "letter", "engine", "garden", "window", "book", "train"]
_VERBS = ["saw", "built", "moved", "painted", "found", "sold", "opened", "cleaned", "wrote", "read"]
_ADJ = ["red", "quiet", "old", "small", "bright", "heavy", "slow", "warm"]


def _sentence(rng: np.random.Generator) -> str:
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    n = int(rng.integers(2, 1990))
    forms = [
        f"{pick(_NAMES)} {pick(_VERBS)} {int(rng.integers(2, 60))} {pick(_ADJ)} {pick(_NOUNS)}s in {n}.",
        f"On {pick(_NAMES)} the {pick(_NOUNS)} was {pick(_ADJ)}, and {pick(_NAMES)} {pick(_VERBS)} it.",
        f"The {pick(_ADJ)} {pick(_NOUNS)} near {pick(_NAMES)} cost {n} coins and {int(rng.integers(10, 99))} cents.",
    ]
    return pick(forms)


def _code(rng: np.random.Generator, i: int) -> str:
    a, b = int(rng.integers(1, 50)), int(rng.integers(1, 50))
    return (f"def step_{i}(x, y):\n"
            f"    total = x * {a} + y - {b}\n"
            f"    if total >= {a + b} and x != y:\n"
            f"        return total / 2\n"
            f"    return total % {b + 1}\n")


def write_corpus(dir_: Path, n_prose: int = 6, n_code: int = 3, seed: int = 0) -> list[Path]:
    """``n_prose`` prose documents and ``n_code`` code documents as .txt files (about 6 KB)."""
    rng = np.random.default_rng(seed)
    dir_.mkdir(parents=True, exist_ok=True)
    paths = []
    for d in range(n_prose):
        p = dir_ / f"prose_{d}.txt"
        p.write_text(" ".join(_sentence(rng) for _ in range(9)) + "\n")
        paths.append(p)
    for d in range(n_code):
        p = dir_ / f"code_{d}.txt"
        p.write_text("\n".join(_code(rng, 4 * d + j) for j in range(4)))
        paths.append(p)
    return paths


def bpe_tokenizer(texts: list[str], vocab_size: int = 320):
    """A byte-level BPE fast tokenizer trained on ``texts``.

    Like the Llama and OLMoE tokenizers it puts a BOS token (empty character span) in front of
    every document, so the pipeline meets special tokens the way it does on real models.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<eos>", "<bos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tok.token_to_id("<bos>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>",
                                   bos_token="<bos>")


def save_tiny_models(root: Path, tokenizer, seed: int = 0) -> tuple[Path, Path]:
    """A tiny OLMoE (4 experts, top-2) and a tiny Llama, seeded, saved with ``tokenizer``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, OlmoeConfig, OlmoeForCausalLM

    common = dict(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                  pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                  bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=False)
    out = []
    for name, cls, cfg in (("moe", OlmoeForCausalLM,
                            OlmoeConfig(intermediate_size=16, num_experts=4, num_experts_per_tok=2,
                                        **common)),
                           ("dense", LlamaForCausalLM, LlamaConfig(intermediate_size=64, **common))):
        torch.manual_seed(seed)  # test-only: seeded tiny weights
        d = root / name
        cls(cfg).eval().save_pretrained(d)
        tokenizer.save_pretrained(d)
        out.append(d)
    return out[0], out[1]
