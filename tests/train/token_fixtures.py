"""Synthetic token directories for the trainer tests.

A Markov stream a tiny model learns within a few steps, so a test can assert that the loss
falls; written as a real token directory (``meta.json`` through ``moelens.data.tokens``) and read
by the real ``TokenData``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from moelens.data.tokens import write_meta


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
    write_meta(path, {"kind": kind, "dtype": "uint8", "vocab_size": vocab, "block_size": block_size,
                      "tokenizer": "chess" if kind == "chess" else "tokenizer.json",
                      "n_train": n_train, "n_val": n_val, "source": {"generator": "markov"},
                      "seed": seed})
    return path
