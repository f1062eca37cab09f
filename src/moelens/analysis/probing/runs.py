"""A probe run's identity on disk: the settings that change its results, the key of its resume
parts, the check that a finished run was made with the same settings, and the model's short name.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from moelens.config import to_dict
from moelens.errors import ConfigError

NOT_RESULTS = ("quiet", "overwrite", "figures", "out")
"""Config fields that change where or how loudly a run writes, never its numbers."""


def result_settings(cfg: Any) -> dict[str, Any]:
    """The settings of a probe config that change results, in their JSON form (as saved in
    ``config.json``)."""
    d = {k: v for k, v in to_dict(cfg).items() if k not in NOT_RESULTS}
    return json.loads(json.dumps(d, sort_keys=True))


def parts_key(cfg: Any) -> str:
    """Hash of the settings that change results: parts of another config are never reused."""
    return hashlib.sha256(json.dumps(result_settings(cfg), sort_keys=True).encode()).hexdigest()[:12]


def check_done_run(out: Path, cfg: Any) -> None:
    """A finished run made with other settings is an error, not a silent skip with old results."""
    try:
        saved = json.loads((Path(out) / "config.json").read_text()).get("config", {})
    except (OSError, ValueError, AttributeError):
        return  # no readable config: the DONE marker alone decides, as for any stage
    now = result_settings(cfg)
    differ = sorted(k for k in set(now) | set(saved) if k not in NOT_RESULTS
                    and now.get(k) != saved.get(k))
    if differ:
        raise ConfigError(f"{out} holds a finished probe run with other settings "
                          f"({', '.join(differ)}); pass --overwrite to redo it or choose another --out")


def display_name(model_id: str, store: Path) -> str:
    """A short model name for tables and figure legends when ``--model`` is not given.

    A hub id (``owner/name``) is kept whole; a local path becomes its last part, or the run
    folder's name for moelens's ``<run>/<stage>/model`` layout; no id at all, the store's name.
    """
    if not model_id:
        return store.name
    parts = Path(model_id).parts
    if len(parts) == 2 and not model_id.startswith((".", "/", "~")):
        return model_id
    name = [p for p in parts if p not in ("/", ".", "..")]
    if not name:
        return store.name
    if name[-1] == "model" and len(name) > 1:
        return name[-2]
    return name[-1]
