"""Load a causal LM and its tokenizer for capture, offline unless the user names a hub model.

A name that is not an existing path is looked up on the hub once, with a short timeout, before
transformers tries it (transformers retries a failing hub for half a minute); with HF_HUB_OFFLINE
set it must be a directory or already in the hub cache. A local model whose ``model_type``
transformers does not know is reported as an unsupported family.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from moelens.errors import CheckpointError, UnsupportedModelError

from .registry import how_to_add_a_family

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


HUB_TIMEOUT_S = 10.0
"""How long the one look-up of a name on the hub may take before it counts as unreachable."""


def _check_model_type(path: Path, trust_remote_code: bool) -> None:
    """A local model whose ``model_type`` transformers cannot build is named as unsupported here,
    with how to add a family, instead of transformers' own message about its Auto classes."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}/config.json is unreadable ({_first_line(err)}); "
                              "pass a directory written by save_pretrained") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type in CONFIG_MAPPING or (trust_remote_code and "auto_map" in config):
        return
    import transformers

    raise UnsupportedModelError(f"{path} has model_type {model_type!r}, which transformers "
                                f"{transformers.__version__} cannot load; {how_to_add_a_family(model_type)}")


def _hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) as huggingface_hub reads it, also when it was set
    after huggingface_hub was imported."""
    from huggingface_hub import constants

    env = (os.environ.get(v, "").upper() for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return bool(constants.HF_HUB_OFFLINE) or any(v in ("1", "ON", "YES", "TRUE") for v in env)


def _in_hub_cache(name: str, revision: str | None) -> bool:
    """Whether the hub cache already holds ``name``'s config (a local look-up, no network)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "config.json", revision=revision), str)
    except Exception:  # not a valid repo id: nothing can be cached under it
        return False


def _hub_problem(name: str, revision: str | None) -> str | None:
    """Why ``name`` cannot be had from the hub (one attempt, bounded by HUB_TIMEOUT_S), or None."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError

    try:
        get_hf_file_metadata(hf_hub_url(name, "config.json", revision=revision), timeout=HUB_TIMEOUT_S)
    except GatedRepoError:
        return None  # it exists; the download says what access it needs
    except HFValidationError as err:
        return f"not a valid hub id ({_first_line(err)})"
    except RepositoryNotFoundError:
        return f"not found on the hub {constants.ENDPOINT}"
    except Exception as err:  # connection refused, DNS, timeout, HTTP errors: one attempt, no retries
        return f"not reachable on the hub {constants.ENDPOINT} ({_first_line(err)})"
    return None


def _resolve_hub_name(name: str, revision: str | None) -> bool:
    """For a name that is not an existing path: check it as a hub id at once, without transformers'
    retry loop. Returns ``local_files_only`` (True when only the hub cache can serve it)."""
    reading = f"model {name!r} is not a local directory (no such path in {Path.cwd()})"
    cached = _in_hub_cache(name, revision)
    if _hub_offline():
        if cached:
            return True
        raise CheckpointError(f"{reading}, and HF_HUB_OFFLINE is set, so it was not looked up on the hub; "
                              "check the path, or unset HF_HUB_OFFLINE to load a hub id")
    print(f"moelens: {name} is not a local directory; looking it up on the hub", file=sys.stdout, flush=True)
    problem = _hub_problem(name, revision)
    if problem is None:
        return False
    if cached:
        return True  # the hub cannot be reached but it was downloaded before
    raise CheckpointError(f"{reading}, and {problem}; pass a saved model directory, or check the hub id "
                          "and the network")


def load_model(
    name_or_dir: str | Path,
    dtype: str | torch.dtype = "float32",
    trust_remote_code: bool = False,
    revision: str | None = None,
    placement: Any = None,
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a local directory or, when the user names one, a hub id.

    Weights are read only from safetensors; ``moelens.models`` is imported first (when present)
    so that directories saved by ``moelens train`` load through the Auto classes. The model is
    returned in eval mode. A :class:`moelens.capture.placement.Placement` with a device map loads
    the model split over devices (accelerate); its budgets are checked against the config before
    any weight is read.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

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
        _check_model_type(path, trust_remote_code)
        local_only = True
    else:
        local_only = _resolve_hub_name(name, revision)
    # use_kernels=False: transformers >= 5.25 otherwise swaps layers for kernels fetched from the
    # hub (a download, and forwards capture's patches would not see)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "local_files_only": local_only}
    if revision is not None:
        kwargs["revision"] = revision
    torch_dtype = _dtype(dtype)
    placed = placement.load_kwargs() if placement is not None else {}
    if placed:
        from moelens.capture.placement import check_fits

        try:
            config = AutoConfig.from_pretrained(name, **kwargs)
        except Exception as err:
            raise CheckpointError(f"cannot read the config of {name}: {_first_line(err)}") from err
        check_fits(placement, config)
    try:
        model = AutoModelForCausalLM.from_pretrained(name, dtype=torch_dtype, use_safetensors=True,
                                                     use_kernels=False, **placed, **kwargs)
    except Exception as err:  # transformers raises OSError/ValueError/KeyError/... for unloadable models
        raise CheckpointError(f"cannot load model {name}: {_first_line(err)}") from err
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, **kwargs)
    except Exception as err:
        raise CheckpointError(f"cannot load the tokenizer of {name}: {_first_line(err)}; save one beside the model") from err
    model.eval()
    return model, tokenizer
