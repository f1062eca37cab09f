"""Loading a saved model directory, with every way it can be unreadable as one user error.

A directory can fail to load because it is missing files, holds a config transformers does not
know, or has a damaged ``model.safetensors`` (a copy cut short, a disk that filled up). The
safetensors reader reports the last case with its own exception type, which is not an OSError,
so each caller catching "the usual" exceptions let it escape as a traceback. This module is the
one place that knows the list; ``moelens train --init_from``, ``moelens eval`` and
``moelens upcycle`` all load through :func:`load_saved_model`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from moelens.errors import CheckpointError
from moelens.hf_progress import quiet_hf_progress

LOAD_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, RuntimeError, KeyError,
                                                 SafetensorError)
"""What loading a bad directory raises: missing or unreadable files (OSError), configs and
shapes that do not fit (ValueError, RuntimeError, KeyError), a damaged safetensors file."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_saved_model(path: Path, model_class: Any = None, what: str = "a saved model") -> Any:
    """``model_class.from_pretrained(path)`` from local files (default: AutoModelForCausalLM).

    Raises :class:`CheckpointError` (one line naming the directory and the reader's complaint)
    when ``path`` has no ``config.json`` or its weights cannot be read.
    """
    import moelens.models  # noqa: F401  (registers model_type "moelens" with the Auto classes)

    path = Path(path)
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path} has no config.json; give the directory {what} was saved to")
    if model_class is None:
        from transformers import AutoModelForCausalLM as model_class
    try:
        with quiet_hf_progress():  # a "Loading weights" bar would break one-line errors
            return model_class.from_pretrained(path, local_files_only=True, use_safetensors=True,
                                              use_kernels=False)
    except LOAD_ERRORS as exc:
        raise CheckpointError(f"cannot load the model in {path} ({_first_line(exc)}); check that "
                              "config.json and model.safetensors are complete, or save it again") \
            from None
