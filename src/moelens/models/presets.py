"""Model presets: ``src/moelens/presets/model-<name>.yaml`` files of MoelensConfig fields.

``model_config("moex")`` reads ``model-moex.yaml`` (``kind: model``) through
:func:`moelens.config.load_preset`, applies keyword overrides, and builds a validated
:class:`MoelensConfig`. A name may be given with or without the ``model-`` prefix, or as a path
to a YAML file. Unknown names and unknown settings are ConfigErrors listing the choices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moelens.config import PRESET_DIR, available_presets, load_preset
from moelens.errors import ConfigError
from moelens.models.config import MoelensConfig, config_fields

PREFIX = "model-"


def model_presets() -> list[str]:
    """Short names of the shipped model presets (``dense-gelu``, ``moex``, ...)."""
    return [n[len(PREFIX):] for n in available_presets("model") if n.startswith(PREFIX)]


def model_settings(name_or_path: str | Path) -> dict[str, Any]:
    """The settings of a model preset (or YAML file), without building a config."""
    text = str(name_or_path)
    if Path(text).suffix in (".yaml", ".yml") and Path(text).exists():
        return load_preset(text, kind="model")
    short = text[len(PREFIX):] if text.startswith(PREFIX) else text
    if not (PRESET_DIR / f"{PREFIX}{short}.yaml").exists():
        raise ConfigError(f"unknown model preset {text!r}; choose one of: {', '.join(model_presets())} "
                          "or give a path to a .yaml file")
    return load_preset(PREFIX + short, kind="model")


def check_settings(settings: dict[str, Any]) -> None:
    """Reject keys that are not MoelensConfig fields (a typo must not pass silently)."""
    known = set(config_fields())
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(f"unknown model setting {unknown[0]!r}; valid settings are: {', '.join(sorted(known))}")


def model_config(name_or_path: str | Path, **overrides: Any) -> MoelensConfig:
    """A validated MoelensConfig from a preset name or YAML path, with keyword overrides."""
    settings = {**model_settings(name_or_path), **overrides}
    check_settings(settings)
    return MoelensConfig(**settings)
