"""Library-level helpers: examples of a store's units, drawn as ``moelens interpret`` draws them."""

from __future__ import annotations

import asyncio

from moelens.analysis.autointerp.corpus import Corpus
from moelens.analysis.autointerp.examples import ExampleSettings, Sampler, pools
from moelens.analysis.autointerp.units import Unit, read_activations
from moelens.store import ActivationStore


def unit_examples(store_path, units: list[Unit], pool_units: list[Unit] | None = None, **settings):
    store = ActivationStore.open(store_path)
    s = ExampleSettings(**settings)
    corpus = Corpus.from_store(store, s.window)
    others = pools(corpus, read_activations(store, pool_units or units), s.pool_size, s.threshold)
    sampler = Sampler(corpus, s, others)
    return {u: sampler.examples(u, a) for u, a in read_activations(store, units)}


def run(coro):
    return asyncio.run(coro)


def char_tokenizer(chars: str):
    """A one-character-per-token fast tokenizer (offsets included) over ``chars``."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<unk>": 1, "<eos>": 2}
    for c in sorted(set(chars)):
        vocab[c] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="<eos>")


def tiny_llama(directory, seed: int = 0):
    """Save a tiny randomly initialised Llama and a char tokenizer to ``directory``."""
    import string

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = char_tokenizer(string.printable)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=8192,
                      pad_token_id=0, bos_token_id=2, eos_token_id=2)
    torch.manual_seed(seed)  # test-only: seeded tiny weights
    LlamaForCausalLM(cfg).save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory
