"""Which units to interpret, and each unit's activation on every token of a store.

A unit is named by ``(layer, space, expert, index)`` as in the design vocabulary. Expert-level
units are whole experts, read in one of three ways (``expert_score``):

- ``out``: router weight × ‖expert output‖ (the space ``expert_out``; the paper's score);
- ``gate``: the router weight alone (``expert_gate``);
- ``mean_neuron``: the mean of the expert's hidden neurons on the tokens routed to it.

Neuron-level units are one column of any unit space the store holds: expert neurons (``expert``,
with a routing semantics: ``gated`` is MoE-X's wide view), dense FFN neurons, shared-expert
neurons, residual dimensions, or any other dense space the store's reader serves (SAE latents,
once a store holds them as one).

Memory: every read goes through :class:`moelens.store.ActivationStore`, one (layer, expert) or
one shard of a dense space at a time. A unit's activation is one float32 per token of the
store (``4 · n_tokens`` bytes), where a token the unit is not defined on (not routed to its
expert) reads 0, "does not fire".
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from moelens.errors import ConfigError, StoreError

EXPERT_SCORES = {"out": "expert_out", "gate": "expert_gate", "mean_neuron": "expert_mean"}
"""``--expert_score`` -> the unit's space name (``expert_mean`` is not a stored space)."""
EXPERT_LEVEL_SPACES = tuple(EXPERT_SCORES.values())
DENSE_BATCH = 32
"""Dense-space units read per pass over the shards: bounds memory at 32 · 4 · n_tokens bytes."""


@dataclass(frozen=True, order=True)
class Unit:
    layer: int
    space: str
    expert: int = -1
    index: int = -1

    @property
    def name(self) -> str:
        """A file-safe identifier, e.g. ``L1.expert_out.E3`` or ``L0.expert.E2.N17``."""
        parts = [f"L{self.layer}", self.space]
        if self.expert >= 0:
            parts.append(f"E{self.expert}")
        if self.index >= 0:
            parts.append(f"N{self.index}")
        return ".".join(parts)

    @property
    def is_expert(self) -> bool:
        return self.space in EXPERT_LEVEL_SPACES

    def seed(self, seed: int) -> np.random.Generator:
        """A generator of its own for this unit, so units draw different, reproducible samples."""
        return np.random.default_rng([seed, zlib.crc32(self.name.encode())])


def _parse_range(text: str, limit: int, what: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise ConfigError(f"unit {text!r}: {what} must be a number or a range like 0-7") from None
        if a < 0 or b >= limit or b < a:
            raise ConfigError(f"unit {text!r}: {what} must lie in 0..{limit - 1}")
        out.extend(range(a, b + 1))
    return out


def resolve_units(store, layers: list[int], level: str, specs: list[str], expert_score: str = "out",
                  space: str = "expert", semantics: str = "routed") -> list[Unit]:
    """The units a command line names.

    Expert level: ``specs`` are expert ids or ranges (``0 3 5-7``) or ``all``. Neuron level:
    ``E:I`` for expert neurons (``3:0-15``, ``all:5``), ``I`` for dense spaces, or ``all``.
    """
    units: list[Unit] = []
    for layer in layers:
        if level == "expert":
            need = {"out": "expert_out", "gate": None, "mean_neuron": "expert"}[expert_score]
            if not any(s in store.spaces(layer) for s in ("expert", "expert_gate", "expert_out")):
                raise StoreError(f"layer {layer} of the store has no experts (spaces: "
                                 f"{', '.join(store.spaces(layer))}); use --level neuron or another layer")
            if need and need not in store.spaces(layer):
                raise StoreError(f"--expert_score {expert_score} needs the space {need!r}, which was not "
                                 f"captured at layer {layer}; capture it or choose another --expert_score")
            n = store.num_experts(layer)
            ids = list(range(n)) if specs in ([], ["all"]) else sorted(
                {e for s in specs for e in _parse_range(s, n, "expert")})
            units += [Unit(layer, EXPERT_SCORES[expert_score], e) for e in ids]
            continue
        if space not in store.spaces(layer):
            raise StoreError(f"space {space!r} was not captured at layer {layer}; it holds "
                             f"{', '.join(store.spaces(layer))}")
        width = store.width(layer, space)
        if space == "expert":
            n = store.num_experts(layer)
            for s in specs or ["all"]:
                if s == "all":
                    units += [Unit(layer, "expert", e, i) for e in range(n) for i in range(width)]
                    continue
                e_txt, sep, i_txt = s.partition(":")
                if not sep:
                    raise ConfigError(f"expert neurons are named EXPERT:INDEX (e.g. 3:17 or 0-7:0-15), got {s!r}")
                experts = list(range(n)) if e_txt == "all" else _parse_range(e_txt, n, "expert")
                idx = list(range(width)) if i_txt == "all" else _parse_range(i_txt, width, "neuron")
                units += [Unit(layer, "expert", e, i) for e in experts for i in idx]
        else:
            idx = list(range(width)) if specs in ([], ["all"]) else sorted(
                {i for s in specs for i in _parse_range(s, width, "index")})
            units += [Unit(layer, space, -1, i) for i in idx]
    out = sorted(set(units))
    if not out:
        raise ConfigError("no units selected; check --units")
    return out


def _expert_routing(store, layer: int, expert: int) -> tuple[np.ndarray, np.ndarray]:
    """Tokens routed to ``expert`` and their router weight (summed over top-k slots)."""
    ids, w = store.routing(layer)
    hit = ids == expert
    rows = np.flatnonzero(hit.any(axis=1))
    return rows, (w[rows] * hit[rows]).sum(axis=1).astype(np.float32)


def read_activations(store, units: list[Unit], semantics: str = "routed") -> Iterator[tuple[Unit, np.ndarray]]:
    """``(unit, float32 [n_tokens])`` for every unit, reading each (layer, expert) or dense space
    once for all the units that share it. Tokens where a unit is undefined read 0."""
    n = store.n_tokens
    groups: dict[tuple[int, str, int], list[Unit]] = {}
    for u in units:
        groups.setdefault((u.layer, u.space, u.expert), []).append(u)
    for (layer, space, expert), members in groups.items():
        if space in ("expert_out", "expert_gate"):
            rows, weight = _expert_routing(store, layer, expert)
            act = np.zeros(n, dtype=np.float32)
            if space == "expert_gate":
                act[rows] = weight
            elif rows.size:
                act[rows] = store.dense(layer, "expert_out", tokens=rows)[:, expert]
            yield members[0], act
        elif space in ("expert_mean", "expert"):
            tok, acts = store.expert(layer, expert, semantics="routed")
            if space == "expert_mean":
                act = np.zeros(n, dtype=np.float32)
                act[tok] = acts.mean(axis=1) if acts.size else 0.0
                yield members[0], act
                continue
            scale = np.ones(tok.size, dtype=np.float32)
            if semantics == "gated":
                rows, weight = _expert_routing(store, layer, expert)
                scale = weight[np.searchsorted(rows, tok)] if tok.size else scale
            for u in members:
                act = np.zeros(n, dtype=np.float32)
                act[tok] = acts[:, u.index] * scale
                yield u, act
        else:  # a dense space: one pass over its shards per DENSE_BATCH units
            for b in range(0, len(members), DENSE_BATCH):
                batch = members[b:b + DENSE_BATCH]
                cols = [u.index for u in batch]
                out = np.zeros((len(cols), n), dtype=np.float32)
                for rec in store.manifest["shards"]:
                    lo, hi = int(rec["start"]), int(rec["stop"])
                    block = store.dense(layer, space, tokens=np.arange(lo, hi))
                    out[:, lo:hi] = block[:, cols].T
                for u, row in zip(batch, out):
                    yield u, row
                del out


def check_semantics(semantics: str) -> None:
    if semantics not in ("routed", "gated", "zero_filled"):
        raise ConfigError(f"semantics must be routed, gated or zero_filled, got {semantics!r}")
