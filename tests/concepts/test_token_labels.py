"""Character spans -> token labels, through a real byte-level BPE tokenizer's offsets."""

from __future__ import annotations

import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from moelens.data.concepts import (
    get_concept,
    spans_to_token_labels,
    token_eligible,
    token_labels,
)

CORPUS = ["The café sold 2024 cups of coffee.", "def run(x):\n    return x + 1",
          "Let $x^2$ be \\frac{a+b}{c} here.", "Ünïcödé text with ASCII and digits 42."] * 20


@pytest.fixture(scope="module")
def bpe():
    """A tiny byte-level BPE trained in the test, wrapped as transformers 5 does it."""
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok)


def offsets_of(bpe, text):
    enc = bpe(text, return_offsets_mapping=True, add_special_tokens=False)
    return enc["input_ids"], np.asarray(enc["offset_mapping"])


def test_any_character_rule_on_bpe_tokens(bpe):
    text = "The café sold 2024 cups."
    _ids, off = offsets_of(bpe, text)
    labels = token_labels(get_concept("contains_digit"), text, off)
    # every labelled token covers a digit, every digit is covered by a labelled token
    for (s, e), y in zip(off, labels):
        assert y == any(c.isdigit() for c in text[s:e])
    assert labels.any()


def test_multibyte_character_split_across_tokens(bpe):
    text = "z€z"  # "€" is three bytes, never seen in training: one token per byte
    _ids, off = offsets_of(bpe, text)
    labels = token_labels(get_concept("non_ascii"), text, off)
    pieces = [tuple(o) for o, y in zip(off, labels) if y]
    assert len(pieces) >= 2 and all(p == (1, 2) for p in pieces)
    assert not labels[0] and not labels[-1]


def test_numerator_tokens_only(bpe):
    text = "Let $\\frac{a+b}{c}$ go."
    _ids, off = offsets_of(bpe, text)
    labels = token_labels(get_concept("numerator"), text, off)
    covered = "".join(text[s:e] for (s, e), y in zip(off, labels) if y)
    assert "a+b" in covered and "c}" not in covered and "frac" not in covered


def test_empty_spans_never_positive_and_clipping():
    offsets = np.array([[0, 0], [0, 2], [2, 2], [2, 50]])
    labels = spans_to_token_labels([(0, 10)], 4, offsets)
    assert labels.tolist() == [False, True, False, True]


def test_token_eligible_follows_window():
    text = "a " * 200
    off = np.array([[i, i + 1] for i in range(len(text))])
    assert token_eligible(get_concept("contains_digit"), text, off).sum() == len(text)
    paper = token_eligible(get_concept("contains_digit", "paper"), text, off)
    assert paper.sum() == 300 and paper[:300].all()
    code = token_eligible(get_concept("loop", "paper"), text, off)
    assert code.sum() == 300 and code[-300:].all()


def test_corpus_token_labels_over_interleaved_documents():
    from moelens.data.concepts import corpus_token_labels

    docs = ["ab 12", "x" * 310 + "9"]
    doc_ids = np.array([1, 0, 0, 1, 0])
    offsets = np.array([[0, 5], [0, 2], [3, 5], [310, 311], [2, 3]])
    labels, eligible = corpus_token_labels(get_concept("contains_digit"), docs, doc_ids, offsets)
    assert labels.tolist() == [False, False, True, True, False]
    assert eligible.tolist() == [True, True, True, True, True]
    labels, eligible = corpus_token_labels(get_concept("contains_digit", "paper"), docs, doc_ids,
                                           offsets)
    assert labels.tolist() == [False, False, True, False, False]  # "9" is past 300 characters
    assert eligible.tolist() == [True, True, True, False, True]
