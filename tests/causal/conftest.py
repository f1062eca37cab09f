"""Fixtures of the causal tests: the planted models saved with a character tokenizer, and a
two-domain corpus that walks each domain's alphabet (builders in ``planted``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from .family_models import moelens_model
from .planted import CHARS, A, B, char_tokenizer, domain_model, trigger_model, walk


@pytest.fixture(scope="session")
def planted_dirs(tmp_path_factory) -> dict[str, Path]:
    """``trigger`` and ``domain`` model directories and the ``alpha``/``beta`` corpus files."""
    root = tmp_path_factory.mktemp("planted")
    tok = char_tokenizer()
    out = {}
    two_layers = moelens_model("softmax", vocab=len(CHARS) + 2, layers=2)
    for name, model in (("trigger", trigger_model("q", "z")), ("domain", domain_model()),
                        ("two_layers", two_layers)):
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        out[name] = root / name
    for name, letters in (("alpha", A), ("beta", B)):
        path = root / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"text": walk(letters, 3 * i, 30)}) + "\n" for i in range(4)))
        out[name] = path
        long = root / "long" / f"{name}.jsonl"  # for the kill test: long enough to stop mid-run
        long.parent.mkdir(exist_ok=True)
        long.write_text("".join(json.dumps({"text": walk(letters, i, 48)}) + "\n" for i in range(16)))
        out[f"{name}_long"] = long
    return out


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models gain nothing from threads; on a shared 2-core box one thread is much faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
