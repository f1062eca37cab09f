"""Reading an expert's promoted tokens (its logit lens) from the ``lens.json`` beside a store.

The lens needs the model's weights (each expert's down projection, the final norm, the
unembedding), which an analysis never loads: ``moelens lens`` (capture side, where the model
adapters live) computes it once per store and writes ``<store>/lens.json``; the explainer only
reads the result. Two variants are stored: ``fixed`` (the final norm applied to the expert
output before unembedding, the default) and ``paper`` (no norm, as the paper's scripts did).
"""

from __future__ import annotations

import json
from pathlib import Path

from moelens.errors import ConfigError

LENS_FORMAT = "moelens-lens"


def load_lens(path: Path, store, variant: str = "fixed") -> dict[tuple[int, int], list[str]]:
    """``{(layer, expert): [promoted token text, ...]}`` for ``store``; ConfigError if foreign."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the lens file {path} ({type(exc).__name__}); rerun 'moelens lens'") from None
    if data.get("format") != LENS_FORMAT:
        raise ConfigError(f"{path} is not a lens file written by 'moelens lens'")
    if data.get("store_fingerprint") != store.manifest.get("fingerprint"):
        raise ConfigError(f"the lens file {path} was computed for another store; rerun 'moelens lens' "
                          "on this store")
    key = "promoted" if variant == "fixed" else "promoted_no_norm"
    out = {}
    for layer, info in data["layers"].items():
        for expert, entry in info["experts"].items():
            out[(int(layer), int(expert))] = [t["token"] for t in entry[key]]
    return out
