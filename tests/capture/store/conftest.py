"""Fixtures for the store tests: a saved tiny OLMoE with a char tokenizer, a small corpus.

Helpers and the adapter choice live in ``store_helpers`` (import that, never ``conftest``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from store_helpers import ADAPTER, TEXT, char_tokenizer, tiny_olmoe


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("olmoe")
    tok = char_tokenizer(TEXT + "0123456789;.+#=-BKNOQRx")
    tiny_olmoe(len(tok)).save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def corpus_files(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("corpus")
    a = d / "a.txt"
    a.write_text(TEXT * 3)
    b = d / "b.jsonl"
    b.write_text('{"text": "a short one."}\n{"text": "jumps over the dog"}\n'
                 '{"text": "' + "quick zebras " * 6 + '"}\n')
    return [a, b]


@pytest.fixture
def capture_args(model_dir, corpus_files, tmp_path):
    """CLI arguments of a small capture; tests append or override flags."""
    args = ["--model", str(model_dir), "--corpus", *map(str, corpus_files), "--ctx", "40",
            "--batch_size", "3", "--shard_tokens", "64", "--quiet"]
    if ADAPTER:
        args += ["--adapter", ADAPTER]
    return args
