"""Load a causal LM and its tokenizer for capture, offline unless the user names a hub model."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch

from moelens.errors import CheckpointError

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}


def _dtype(dtype: str | torch.dtype) -> torch.dtype | str:
    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    if dtype not in _DTYPES:
        raise CheckpointError(f"unknown dtype {dtype!r}; use one of {', '.join(sorted(_DTYPES))} or auto")
    return _DTYPES[dtype]


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def load_model(
    name_or_dir: str | Path,
    dtype: str | torch.dtype = "float32",
    trust_remote_code: bool = False,
    revision: str | None = None,
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a local directory or, when the user names one, a hub id.

    Weights are read only from safetensors; ``moelens.models`` is imported first (when present)
    so that directories saved by ``moelens train`` load through the Auto classes. The model is
    returned in eval mode.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        importlib.import_module("moelens.models")
    except ImportError:
        pass
    name = str(name_or_dir)
    path = Path(name).expanduser()
    local = path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1
    if local:
        if not path.is_dir():
            raise CheckpointError(f"model directory {name} does not exist; pass a saved model directory or a hub id")
        if not (path / "config.json").is_file():
            raise CheckpointError(f"{name} has no config.json; pass a directory written by save_pretrained")
        name = str(path)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "local_files_only": local}
    if revision is not None:
        kwargs["revision"] = revision
    torch_dtype = _dtype(dtype)
    try:
        model = AutoModelForCausalLM.from_pretrained(name, dtype=torch_dtype, use_safetensors=True, **kwargs)
    except Exception as err:  # transformers raises OSError/ValueError/KeyError/... for unloadable models
        raise CheckpointError(f"cannot load model {name}: {_first_line(err)}") from err
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, **kwargs)
    except Exception as err:
        raise CheckpointError(f"cannot load the tokenizer of {name}: {_first_line(err)}; save one beside the model") from err
    model.eval()
    return model, tokenizer
