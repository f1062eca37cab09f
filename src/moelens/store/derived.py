"""Derived unit spaces: units computed from a captured space, kept inside the store.

A sparse autoencoder trained on one dense space of a store (``moelens sae train``) turns that
space into latents, and every analysis should read those latents like any captured space. So the
store itself knows how to compute them: the SAE is saved under the store directory and the reader
lists it in ``spaces(layer)``, gives its ``width`` and computes ``dense(layer, space, tokens)`` by
encoding the source space, a chunk of tokens at a time. Analyses never learn that a space is
derived.

Layout (one directory per derived space, written whole by an atomic rename)::

    derived/L003/sae/derived.json        the descriptor: what the space is and every file's sha256
    derived/L003/sae/sae.safetensors     encoder.weight [W, d_in], encoder.bias [W], W_dec [W, d_in],
                                         b_dec [d_in] (float32)
    derived/L003/sae/...                 whatever else the producer keeps (config, metrics, curve)

The encoder is ``a = relu(W_enc (x - b_dec) + b_enc)``, and for ``encoder: "topk"`` only the ``k``
largest entries of ``a`` per token are kept (ties at zero are immaterial). It is computed here in
numpy from the saved weights, so reading a store never needs torch or the library that trained it.

A directory whose descriptor is unreadable, names another layer or source width, or was trained
on another capture (the manifest's fingerprint differs) is not listed as a space; reading it
raises a :class:`StoreError` saying why, and :func:`moelens.store.verify` reports it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moelens.errors import StoreError
from moelens.rundir import atomic_write_json, sha256_file
from moelens.store import format as fmt

DERIVED_DIR = "derived"
DESCRIPTOR = "derived.json"
FORMAT_NAME = "moelens-derived-space"
FORMAT_VERSION = 1
WEIGHTS = "sae.safetensors"
ENCODERS = ("topk", "relu")
"""``topk``: relu, then the k largest per token; ``relu``: relu of the affine map only."""
SOURCE_SPACES = fmt.DENSE_SPACES
"""Spaces a derived space can be computed from (those with a dense [n, W] view)."""
NAME_PATTERN = re.compile(r"^sae(_[a-z0-9]+)*$")
"""Derived space names: ``sae``, ``sae_resid``, ``sae_l1`` ... (never a captured space's name)."""
CHUNK_ELEMENTS = 1 << 22
"""Latent values computed at once by :meth:`DerivedSpaces.dense` (tokens per chunk = this over the
width, at least 64): bounds its temporary memory to some tens of MiB whatever the width."""


def space_rel(layer: int, space: str) -> str:
    """Directory of a derived space, relative to the store root."""
    return f"{DERIVED_DIR}/{fmt.layer_dir(layer)}/{space}"


def name_problem(space: str) -> str | None:
    """Why ``space`` cannot name a derived space, or None if it can."""
    if not NAME_PATTERN.match(space):
        return (f"derived space name {space!r} must be 'sae' or 'sae_' followed by lowercase "
                "letters, digits and underscores (e.g. sae_resid)")
    return None


class Encoder:
    """The numpy forward pass of a saved sparse autoencoder's encoder."""

    def __init__(self, w_enc: np.ndarray, b_enc: np.ndarray, b_dec: np.ndarray, encoder: str,
                 k: int | None):
        self.w_t = np.ascontiguousarray(np.asarray(w_enc, dtype=np.float32).T)  # [d_in, W]
        self.b_enc = np.asarray(b_enc, dtype=np.float32)
        self.b_dec = np.asarray(b_dec, dtype=np.float32)
        self.encoder = encoder
        self.k = k

    @classmethod
    def load(cls, weights: Path, encoder: str, k: int | None) -> Encoder:
        from safetensors.numpy import load_file

        t = load_file(str(weights))
        return cls(t["encoder.weight"], t["encoder.bias"], t["b_dec"], encoder, k)

    @property
    def width(self) -> int:
        return int(self.w_t.shape[1])

    def encode(self, x: np.ndarray) -> np.ndarray:
        """float32 [n, width] latents of float32 inputs [n, d_in]."""
        pre = (np.asarray(x, dtype=np.float32) - self.b_dec) @ self.w_t
        pre += self.b_enc
        np.maximum(pre, 0.0, out=pre)
        if self.encoder == "relu" or self.k is None or self.k >= self.width:
            return pre
        top = np.argpartition(pre, self.width - self.k, axis=1)[:, self.width - self.k:]
        out = np.zeros_like(pre)
        np.put_along_axis(out, top, np.take_along_axis(pre, top, axis=1), axis=1)
        return out


@dataclass
class DerivedSpace:
    """One derived space found in a store: its descriptor, or why it cannot be used."""

    layer: int
    space: str
    rel: str
    info: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None
    _encoder: Encoder | None = None

    @property
    def width(self) -> int:
        return int(self.info["width"])

    @property
    def source_space(self) -> str:
        return str(self.info["source_space"])

    def files(self) -> dict[str, dict[str, Any]]:
        """Relative path (from the store root) -> {sha256, bytes} of every listed file."""
        return {f"{self.rel}/{name}": entry for name, entry in self.info.get("files", {}).items()}


def _read_descriptor(root: Path, manifest: dict[str, Any], layer: int, space: str) -> DerivedSpace:
    rel = space_rel(layer, space)
    found = DerivedSpace(layer, space, rel)
    try:
        info = json.loads((root / rel / DESCRIPTOR).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        found.problem = f"{rel}/{DESCRIPTOR} is unreadable ({exc})"
        return found
    found.info = info if isinstance(info, dict) else {}
    try:
        found.problem = _descriptor_problem(found, manifest)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # edited or foreign fields
        found.problem = f"{rel}/{DESCRIPTOR} is malformed ({type(exc).__name__}: {exc})"
    return found


def _descriptor_problem(found: DerivedSpace, manifest: dict[str, Any]) -> str | None:
    info, where = found.info, f"{found.rel}/{DESCRIPTOR}"
    if info.get("format") != FORMAT_NAME or info.get("version") != FORMAT_VERSION:
        return f"{where} is not a version {FORMAT_VERSION} derived-space descriptor"
    if name_problem(found.space) or info.get("space") != found.space or info.get("layer") != found.layer:
        return (f"{where} describes space {info.get('space')!r} at layer {info.get('layer')}, "
                "not its directory's")
    layer_info = manifest["layer_info"].get(str(found.layer))
    source = info.get("source_space")
    if layer_info is None or source not in SOURCE_SPACES or source not in layer_info["spaces"]:
        return f"{where} reads space {source!r}, which this store did not capture at layer {found.layer}"
    if info.get("d_in") != layer_info["widths"][source]:
        return (f"{where} expects {info.get('d_in')} inputs but {source} at layer {found.layer} has "
                f"{layer_info['widths'][source]}")
    if info.get("store_fingerprint") != manifest.get("fingerprint"):
        return f"{where} was made from another capture than this store's"
    if info.get("encoder") not in ENCODERS or not isinstance(info.get("width"), int) or info["width"] < 1:
        return f"{where} has an unknown encoder {info.get('encoder')!r} or a bad width"
    k = info.get("k")
    if info["encoder"] == "topk" and not (isinstance(k, int) and 1 <= k <= info["width"]):
        return f"{where} has k={k!r}, which must lie in 1..width"
    files = info.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
        return f"{where} has no valid file list"
    if WEIGHTS not in files:
        return f"{where} lists no {WEIGHTS}"
    return None


class DerivedSpaces:
    """Every derived space of one store, keyed by (layer, space)."""

    def __init__(self, root: Path, spaces: dict[tuple[int, str], DerivedSpace]):
        self.root = root
        self.spaces = spaces

    @classmethod
    def discover(cls, root: Path, manifest: dict[str, Any]) -> DerivedSpaces:
        """Read the descriptors under ``root/derived`` (cheap: no weights are loaded)."""
        found: dict[tuple[int, str], DerivedSpace] = {}
        base = root / DERIVED_DIR
        if base.is_dir():
            for desc in sorted(base.glob(f"L*/*/{DESCRIPTOR}")):
                layer_dir, space = desc.parent.parent.name, desc.parent.name
                if not re.fullmatch(r"L\d{3,}", layer_dir) or space.startswith("."):
                    continue
                layer = int(layer_dir[1:])
                found[(layer, space)] = _read_descriptor(root, manifest, layer, space)
        return cls(root, found)

    def names(self, layer: int) -> list[str]:
        """Usable derived spaces at ``layer``."""
        return [s for (l, s), d in sorted(self.spaces.items()) if l == layer and d.problem is None]

    def has(self, layer: int, space: str) -> bool:
        """Whether a derived space (usable or not) is stored under this name and layer."""
        return (layer, space) in self.spaces

    def with_spaces(self, layer_info: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
        """Copies of the manifest's per-layer info with the usable derived spaces added."""
        out = {}
        for layer, info in layer_info.items():
            names = [n for n in self.names(layer) if n not in info["spaces"]]
            if names:
                info = {**info, "spaces": list(info["spaces"]) + names,
                        "widths": {**info["widths"], **{n: self.spaces[(layer, n)].width for n in names}}}
            out[layer] = info
        return out

    def encoder(self, layer: int, space: str, verify: bool = True) -> Encoder:
        """The loaded encoder of a usable derived space (weights' sha256 checked once)."""
        d = self.spaces[(layer, space)]
        if d.problem is not None:
            raise StoreError(f"derived space {space!r} at layer {layer} is unusable: {d.problem}; "
                             "retrain it (moelens sae train ... --overwrite) or delete its directory")
        if d._encoder is None:
            path = self.root / d.rel / WEIGHTS
            if not path.is_file():
                raise StoreError(f"{d.rel}/{WEIGHTS} is missing from {self.root}; retrain the derived space")
            if verify and sha256_file(path) != d.info["files"][WEIGHTS].get("sha256"):
                raise StoreError(f"{d.rel}/{WEIGHTS} in {self.root} is corrupt (sha256 does not match "
                                 f"{DESCRIPTOR}); retrain the derived space")
            try:
                enc = Encoder.load(path, d.info["encoder"], d.info.get("k"))
            except (OSError, KeyError, ValueError) as exc:
                raise StoreError(f"{d.rel}/{WEIGHTS} is unreadable ({exc}); retrain the derived "
                                 "space") from None
            if enc.width != d.width or enc.w_t.shape[0] != d.info["d_in"]:
                raise StoreError(f"{d.rel}/{WEIGHTS} holds a {enc.w_t.shape[0]} -> {enc.width} "
                                 f"encoder, {DESCRIPTOR} says {d.info['d_in']} -> {d.width}; "
                                 "retrain the derived space")
            d._encoder = enc
        return d._encoder

    def dense(self, store: Any, layer: int, space: str, sel: np.ndarray | None) -> np.ndarray:
        """float32 [n, W] latents on the selected tokens (all if None), encoded chunk by chunk
        from ``store.dense(layer, source_space, chunk)``."""
        enc = self.encoder(layer, space, store.verify_reads)
        source = self.spaces[(layer, space)].source_space
        target = np.arange(store.n_tokens) if sel is None else sel
        out = np.empty((target.size, enc.width), dtype=np.float32)
        chunk = max(64, CHUNK_ELEMENTS // enc.width)
        for a in range(0, target.size, chunk):
            part = target[a:a + chunk]
            out[a:a + part.size] = enc.encode(store.dense(layer, source, part))
        return out

    def check(self) -> tuple[list[tuple[str, str]], int, int]:
        """(problems as (file, message), files checked, bytes checked) over every derived space."""
        problems: list[tuple[str, str]] = []
        n_files = n_bytes = 0
        for d in self.spaces.values():
            if d.problem is not None:
                problems.append((f"{d.rel}/{DESCRIPTOR}", f"is unusable: {d.problem}"))
                continue
            for rel, entry in d.files().items():
                path = self.root / rel
                if not path.is_file():
                    problems.append((rel, "is missing"))
                    continue
                n_files += 1
                n_bytes += path.stat().st_size
                if sha256_file(path) != entry.get("sha256"):
                    problems.append((rel, f"is corrupt (sha256 does not match {d.rel}/{DESCRIPTOR})"))
        return problems, n_files, n_bytes

    def verify(self) -> None:
        """Raise StoreError naming the first bad derived file, if any."""
        problems, _, _ = self.check()
        if problems:
            rel, message = problems[0]
            raise StoreError(f"derived file {rel} in {self.root} {message}; retrain the derived "
                             "space (moelens sae train ... --overwrite)")


def write_descriptor(directory: Path, *, layer: int, space: str, source_space: str, encoder: str,
                     width: int, d_in: int, k: int | None, store_fingerprint: str | None,
                     extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``directory/derived.json`` listing every other file of ``directory`` with its
    sha256 and size; returns the descriptor. Call it last, inside the atomic directory."""
    if (problem := name_problem(space)) is not None:
        raise StoreError(problem)
    if encoder not in ENCODERS:
        raise StoreError(f"unknown encoder {encoder!r}; use one of {', '.join(ENCODERS)}")
    files = {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
             for p in sorted(directory.iterdir()) if p.is_file() and p.name != DESCRIPTOR}
    if WEIGHTS not in files:
        raise StoreError(f"{directory} holds no {WEIGHTS}; write the weights before the descriptor")
    info = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "space": space, "layer": int(layer),
            "source_space": source_space, "encoder": encoder, "width": int(width), "d_in": int(d_in),
            "k": None if k is None else int(k), "store_fingerprint": store_fingerprint,
            **(extra or {}), "files": files}
    atomic_write_json(directory / DESCRIPTOR, info)
    return info
