"""Typed dataclass configs -> command line, YAML presets, and back.

Every command takes one dataclass config. The docstring written under each field is its
``--help`` text (read from the class source with :mod:`ast`), so a field is documented exactly
once. Values are resolved in this order, later winning:

    dataclass defaults < ``--preset NAME`` < ``--config FILE.yaml`` < explicit flags

Nested dataclass fields become dotted flags (``--model.n_layer 4``) and nested YAML mappings.
Anything the user gets wrong is a :class:`~moelens.errors.ConfigError` (one line, exit 2), never
an argparse usage dump or a traceback.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from moelens.errors import ConfigError

PRESET_DIR = Path(__file__).parent / "presets"


# ---------------------------------------------------------------- field docstrings


def field_docs(cls: type) -> dict[str, str]:
    """Docstrings written directly below each annotated field of a dataclass (and its bases)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


# ---------------------------------------------------------------- type handling


def _resolved_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _convert(value: Any, tp: Any, name: str) -> Any:
    """Convert a YAML or command-line value to the field's declared type, or raise ConfigError."""
    tp, optional = _strip_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise ConfigError(f"{name} must not be empty; give a value or leave the flag out")
    origin = get_origin(tp)
    try:
        if origin is Literal:
            choices = get_args(tp)
            for c in choices:
                if value == c or str(value) == str(c):
                    return c
            raise ConfigError(f"{name}={value!r} is not one of {', '.join(map(str, choices))}")
        if origin in (list, tuple):
            (item_tp, *_rest) = get_args(tp) or (str,)
            if isinstance(value, str):
                value = [v for v in value.replace(",", " ").split() if v]
            if not isinstance(value, (list, tuple)):
                value = [value]
            items = [_convert(v, item_tp, name) for v in value]
            return items if origin is list else tuple(items)
        if tp is bool:
            if isinstance(value, bool):
                return value
            s = str(value).lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{name}={value!r} is not a boolean; use true or false")
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
        if tp is Path:
            return Path(value)
        if dataclasses.is_dataclass(tp):
            if isinstance(value, tp):
                return value
            if not isinstance(value, dict):
                raise ConfigError(f"{name} must be a mapping of its fields, got {value!r}")
            return from_dict(tp, value, prefix=f"{name}.")
        if tp is Any or tp is dict or get_origin(tp) is dict:
            return value
    except ConfigError:
        raise
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={value!r} is not a valid {getattr(tp, '__name__', tp)}") from None
    return value


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build a config from a (possibly nested) mapping; unknown keys are errors, not ignored."""
    if not isinstance(data, dict):
        raise ConfigError(f"config for {cls.__name__} must be a mapping, got {type(data).__name__}")
    hints = _resolved_types(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown setting {prefix}{unknown[0]}; valid settings are: "
            + ", ".join(prefix + n for n in sorted(names))
        )
    kwargs = {k: _convert(v, hints[k], prefix + k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field was not given
        raise ConfigError(f"{prefix or cls.__name__}: {exc}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON/YAML-safe nested dict of a config (paths as strings, tuples as lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: nested mappings merge key by key, everything else is replaced."""
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


# ---------------------------------------------------------------- presets


def available_presets(kind: str | None = None) -> list[str]:
    """Names of the shipped presets (``kind`` filters on the preset file's ``kind:`` key)."""
    names = []
    for p in sorted(PRESET_DIR.glob("*.yaml")):
        if kind is None or (_read_yaml(p).get("kind") == kind):
            names.append(p.stem)
    return names


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}); fix the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of settings")
    return data


PRESET_FLAGS = {"model": "--model.preset"}
"""Where presets of a kind that no command takes whole are chosen (model presets are named by
their short name, without the ``model-`` prefix of their file)."""


def _elsewhere(name: str, kind: str | None) -> str:
    """'; NAME is a model preset: pass --model.preset NAME' when that is what the user meant."""
    for other, flag in PRESET_FLAGS.items():
        if other == kind:
            continue
        short = name[len(other) + 1:] if name.startswith(other + "-") else name
        if (PRESET_DIR / f"{other}-{short}.yaml").exists():
            return f"; {short!r} is a {other} preset: pass {flag} {short}"
    return ""


def load_preset(name_or_path: str, kind: str | None = None) -> dict[str, Any]:
    """Settings from a shipped preset name or a YAML file path, without its ``kind`` key."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        path = PRESET_DIR / f"{name_or_path}.yaml"
        hint = _elsewhere(str(name_or_path), kind)
        if not path.exists():
            what = f"{kind} preset" if kind else "preset"
            raise ConfigError(
                f"unknown {what} {name_or_path!r}; choose one of: "
                f"{', '.join(available_presets(kind))} or give a path to a .yaml file{hint}"
            )
    else:
        hint = ""
    data = _read_yaml(path)
    found = data.pop("kind", None)
    if kind is not None and found is not None and found != kind:
        raise ConfigError(f"preset {name_or_path!r} is a {found} preset, not a {kind} preset{hint}")
    return data


# ---------------------------------------------------------------- command line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:  # one line, exit 2, via the CLI
        raise ConfigError(f"{message}; see '{self.prog} --help'")


def _help_groups(cls: type) -> dict[str, str]:
    """Field name -> heading, for fields declared by a base that names a ``HELP_GROUP`` (a
    ``ClassVar``): flags shared by many commands are listed after a command's own, under it."""
    out: dict[str, str] = {}
    for klass in cls.__mro__:
        heading = klass.__dict__.get("HELP_GROUP")
        if heading and dataclasses.is_dataclass(klass):
            out.update({name: heading for name in klass.__dict__.get("__annotations__", {}) if name != "HELP_GROUP"})
    return out


def _add_fields(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    hints = _resolved_types(cls)
    docs = field_docs(cls)
    grouped = _help_groups(cls)
    groups: dict[str, Any] = {}
    for f in sorted(dataclasses.fields(cls), key=lambda f: f.name in grouped):  # stable: groups last
        if not f.init:
            continue
        target: Any = parser
        if f.name in grouped:
            heading = grouped[f.name]
            if heading not in groups:
                groups[heading] = parser.add_argument_group(heading)
            target = groups[heading]
        tp = hints[f.name]
        inner, _ = _strip_optional(tp)
        flag = f"--{prefix}{f.name}"
        # ``--n_games`` and ``--n-games`` both work: docs and users write either.
        flags = [flag] + ([flag.replace("_", "-")] if "_" in flag else [])
        if dataclasses.is_dataclass(inner):
            _add_fields(parser, inner, prefix=f"{prefix}{f.name}.")
            continue
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        )
        help_text = docs.get(f.name, "")
        if default is not None and not (isinstance(default, (list, tuple)) and not default):  # none shown for []
            shown = default if not isinstance(default, (list, tuple)) else " ".join(map(str, default))
            help_text += f" (default: {shown})"
        help_text = help_text.replace("%", "%%")  # argparse formats help strings with %
        dest = f"{prefix}{f.name}"
        if inner is bool:
            target.add_argument(*flags, dest=dest, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=help_text)
        elif get_origin(inner) in (list, tuple):
            target.add_argument(*flags, dest=dest, nargs="+", default=argparse.SUPPRESS,
                                metavar="V", help=help_text)
        else:
            kwargs: dict[str, Any] = {}
            if get_origin(inner) is Literal:
                kwargs["metavar"] = "{" + ",".join(map(str, get_args(inner))) + "}"
            target.add_argument(*flags, dest=dest, default=argparse.SUPPRESS, help=help_text, **kwargs)


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


_RESERVED = ("preset", "config")
"""Flags the parser adds in front of a config's own fields: ``--preset`` only for commands with a
preset kind (others, like upcycle, may have a ``preset`` field of their own), ``--config`` always."""


_POSITIONAL = "positional"
"""Parser dest of a config's one positional argument: a class names the field it stands for in a
``POSITIONAL`` class attribute (a ``ClassVar``, so not a dataclass field)."""


def build_parser(cls: type, prog: str, description: str = "", preset_kind: str | None = None):
    """An argparse parser for ``cls`` with ``--preset`` and ``--config`` in front."""
    parser = _Parser(prog=prog, description=description)
    reserved = {n for n in _RESERVED if n != "preset" or preset_kind is not None}
    clash = sorted(reserved & {f.name for f in dataclasses.fields(cls)})
    if clash:  # the field would be swallowed by the generic flag of the same name
        raise TypeError(f"{cls.__name__} has a field {clash[0]!r}, which the command line "
                        "reserves; rename the field")
    if preset_kind is not None:
        names = ", ".join(available_presets(preset_kind))
        parser.add_argument("--preset", default=None,
                            help=f"start from a shipped preset ({names}) or a YAML file")
    after = " (applied after --preset)" if preset_kind is not None else ""
    parser.add_argument("--config", default=None, help=f"a YAML file of settings{after}")
    _add_fields(parser, cls)
    positional = getattr(cls, "POSITIONAL", None)
    if positional is not None:  # e.g. ``moelens store verify STORE`` as well as ``--store STORE``
        parser.add_argument(_POSITIONAL, nargs="?", default=argparse.SUPPRESS,
                            metavar=positional.upper(), help=f"the same as --{positional}")
    return parser


def parse(cls: type, argv: list[str], prog: str, description: str = "",
          preset_kind: str | None = None, default_preset: str | None = None) -> Any:
    """Parse ``argv`` into a ``cls`` instance (defaults < preset < --config < flags)."""
    parser = build_parser(cls, prog, description, preset_kind)
    ns = vars(parser.parse_args(argv))
    if _POSITIONAL in ns:
        name = cls.POSITIONAL
        if name in ns:
            raise ConfigError(f"give {name.upper()} or --{name}, not both")
        ns[name] = ns.pop(_POSITIONAL)
    # without a preset kind, ``preset`` (if present) is the config's own field, not the flag
    preset = (ns.pop("preset", None) if preset_kind is not None else None) or default_preset
    config_file = ns.pop("config", None)
    data: dict[str, Any] = {}
    if preset:
        data = merge(data, load_preset(preset, preset_kind))
    if config_file:
        path = Path(config_file)
        if not path.exists():
            raise ConfigError(f"config file {config_file} does not exist; check the path")
        data = merge(data, _read_yaml(path))
    data = merge(data, _nest(ns))
    return from_dict(cls, data)
