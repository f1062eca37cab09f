"""Fixtures of the causal tests: the planted models saved with a character tokenizer, and a
two-domain corpus that walks each domain's alphabet (builders in ``planted``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .planted import A, B, char_tokenizer, domain_model, trigger_model, walk


@pytest.fixture(scope="session")
def planted_dirs(tmp_path_factory) -> dict[str, Path]:
    """``trigger`` and ``domain`` model directories and the ``alpha``/``beta`` corpus files."""
    root = tmp_path_factory.mktemp("planted")
    tok = char_tokenizer()
    out = {}
    for name, model in (("trigger", trigger_model("q", "z")), ("domain", domain_model())):
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        out[name] = root / name
    for name, letters in (("alpha", A), ("beta", B)):
        path = root / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"text": walk(letters, 3 * i, 30)}) + "\n" for i in range(4)))
        out[name] = path
    return out
