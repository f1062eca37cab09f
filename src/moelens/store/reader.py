"""Reading an activation store without loading more than an analysis asks for.

Arrays are opened with ``np.load(mmap_mode="r")`` and sliced, so reading one expert touches only
that expert's rows (rows are sorted by expert within each shard, with per-expert row offsets).
Each file's sha256 is checked the first time it is read (streamed, in 1 MiB blocks); a mismatch is
a :class:`StoreError` naming the file.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from moelens.errors import StoreError
from moelens.rundir import sha256_file
from moelens.store import format as fmt
from moelens.store.derived import DerivedSpaces
from moelens.store.stats import UnitStats

TokenSel = np.ndarray | list[int] | None


class ActivationStore:
    """A complete capture on disk. Open with :meth:`ActivationStore.open`."""

    def __init__(self, root: Path, manifest: dict[str, Any], verify_reads: bool = True):
        self.root = root
        self.manifest = manifest
        self.verify_reads = verify_reads
        self._info = {int(k): v for k, v in manifest["layer_info"].items()}
        self._derived = DerivedSpaces.discover(root, manifest)  # SAE latents etc.: store/derived.py
        self._info = self._derived.with_spaces(self._info)
        self._files = {rel: entry for rec in manifest["shards"] for rel, entry in rec["files"].items()}
        self._files[manifest["documents"]["file"]] = manifest["documents"]
        self._verified: set[str] = set()
        self._routing: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # small: [n, k] per layer
        self._starts = np.array([rec["start"] for rec in manifest["shards"]], dtype=np.int64)

    @classmethod
    def open(cls, path: str | Path, verify_reads: bool = True) -> ActivationStore:
        """Open the store at ``path``; raises StoreError if it is missing, incomplete or foreign."""
        root = Path(path)
        mpath = root / "manifest.json"
        if not mpath.exists():
            if (root / "capture.json").exists():
                raise StoreError(f"{root} holds an unfinished capture (no manifest.json); rerun the "
                                 "same capture command to finish it")
            raise StoreError(f"no activation store at {root} (no manifest.json); run 'moelens capture' first")
        try:
            manifest = json.loads(mpath.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"{mpath} is unreadable ({exc}); recapture the store") from None
        if manifest.get("format") != fmt.FORMAT_NAME:
            raise StoreError(f"{root} is not a moelens activation store")
        if manifest.get("format_version") != fmt.FORMAT_VERSION:
            raise StoreError(f"{root} has store format version {manifest.get('format_version')}, this "
                             f"moelens reads version {fmt.FORMAT_VERSION}; recapture it with this version")
        try:
            return cls(root, manifest, verify_reads)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # edited or foreign fields
            raise StoreError(f"{mpath} is malformed ({type(exc).__name__}: {exc}); recapture the store") from None

    # ---------------------------------------------------------------- description

    @property
    def n_tokens(self) -> int:
        return int(self.manifest["n_tokens"])

    @property
    def layers(self) -> list[int]:
        return sorted(self._info)

    def _layer(self, layer: int) -> dict[str, Any]:
        if layer not in self._info:
            raise StoreError(f"layer {layer} is not in this store; it holds layers {self.layers}")
        return self._info[layer]

    def spaces(self, layer: int) -> list[str]:
        return list(self._layer(layer)["spaces"])

    def _check_space(self, layer: int, space: str) -> dict[str, Any]:
        info = self._layer(layer)
        if space not in info["spaces"]:
            raise StoreError(f"space {space!r} was not captured at layer {layer}; it holds "
                             f"{', '.join(info['spaces'])}")
        return info

    def width(self, layer: int, space: str) -> int:
        return int(self._check_space(layer, space)["widths"][space])

    def num_experts(self, layer: int) -> int:
        return int(self._layer(layer)["num_experts"])

    def top_k(self, layer: int) -> int:
        return int(self._layer(layer)["top_k"])

    # ---------------------------------------------------------------- files

    def _load(self, rel: str) -> np.ndarray:
        entry = self._files.get(rel)
        path = self.root / rel
        if entry is None or not path.exists():
            raise StoreError(f"store file {rel} is missing from {self.root}; recapture the store")
        if self.verify_reads and rel not in self._verified:
            self._check(rel, entry)
        return np.load(path, mmap_mode="r", allow_pickle=False)

    def _check(self, rel: str, entry: dict[str, Any]) -> None:
        path = self.root / rel
        if not path.exists():
            raise StoreError(f"store file {rel} is missing from {self.root}; recapture the store")
        if sha256_file(path) != entry["sha256"]:
            raise StoreError(f"shard file {rel} in {self.root} is corrupt (sha256 does not match the "
                             "manifest); recapture the store")
        self._verified.add(rel)

    def verify(self) -> None:
        """Check every file against the manifest's sha256; raises StoreError naming a bad one."""
        for rel, entry in self._files.items():
            self._check(rel, entry)
        self._derived.verify()

    # ---------------------------------------------------------------- tokens

    @cached_property
    def _token_table(self) -> np.ndarray:
        parts = [np.asarray(self._load(fmt.tokens_rel(r["index"]))) for r in self.manifest["shards"]]
        return np.concatenate(parts) if parts else np.zeros((0, len(fmt.TOKEN_COLUMNS)), np.int64)

    def tokens(self) -> np.ndarray:
        return self._token_table[:, 0].copy()

    def doc_ids(self) -> np.ndarray:
        return self._token_table[:, 1].copy()

    def positions(self) -> np.ndarray:
        return self._token_table[:, 2].copy()

    def offsets(self) -> np.ndarray:
        return self._token_table[:, 3:5].copy()

    def documents(self) -> list[str]:
        return list(json.loads((self.root / self._load_documents()).read_text(encoding="utf-8")))

    def _load_documents(self) -> str:
        rel = self.manifest["documents"]["file"]
        if self.verify_reads and rel not in self._verified:
            self._check(rel, self._files[rel])
        return rel

    # ---------------------------------------------------------------- routing and experts

    def routing(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """Router top-k ids int64 [n, k] and weights float32 [n, k], exactly as the model used them."""
        if layer not in self._routing:
            self._routing[layer] = self._read_routing(layer)
        ids, w = self._routing[layer]
        return ids.copy(), w.copy()

    def _read_routing(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        info = self._layer(layer)
        if info["kind"] != "moe" or not info.get("routing"):
            raise StoreError(f"layer {layer} has no routing in this store (capture an expert space there)")
        shards = self.manifest["shards"]
        ids = [np.asarray(self._load(fmt.array_rel(layer, "routing", r["index"], "ids"))) for r in shards]
        w = [np.asarray(self._load(fmt.array_rel(layer, "routing", r["index"], "weights"))) for r in shards]
        k = self.top_k(layer)
        return (np.concatenate(ids).astype(np.int64) if ids else np.zeros((0, k), np.int64),
                np.concatenate(w).astype(np.float32) if w else np.zeros((0, k), np.float32))

    def _token_sel(self, tokens: TokenSel) -> np.ndarray | None:
        if tokens is None:
            return None
        sel = np.asarray(tokens)
        if sel.dtype == bool:
            if sel.shape != (self.n_tokens,):
                raise StoreError(f"a token mask must have length n_tokens={self.n_tokens}, got {sel.shape}")
            return np.flatnonzero(sel)
        sel = sel.astype(np.int64).reshape(-1)
        if sel.size and (sel.min() < 0 or sel.max() >= self.n_tokens):
            raise StoreError(f"token indices must lie in [0, {self.n_tokens}); got {sel.min()}..{sel.max()}")
        return sel

    def _routed_rows(self, layer: int, expert: int, record: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """(global token idx, float32 acts) of the rows of ``expert`` in one shard."""
        i, width = record["index"], self.width(layer, "expert")
        offsets = self._load(fmt.array_rel(layer, "expert", i, "offsets"))
        a, b = int(offsets[expert]), int(offsets[expert + 1])
        tok = np.asarray(self._load(fmt.array_rel(layer, "expert", i, "token"))[a:b])
        dtype = self.manifest["dtype"]
        if record["expert_layout"][str(layer)] == "rows":
            acts = fmt.from_storage(self._load(fmt.array_rel(layer, "expert", i, "values"))[a:b], dtype)
            return tok, np.array(acts, dtype=np.float32)
        coo_row = self._load(fmt.array_rel(layer, "expert", i, "coo_row"))
        lo, hi = np.searchsorted(coo_row, [a, b])
        acts = np.zeros((b - a, width), dtype=np.float32)
        rows = np.asarray(coo_row[lo:hi], dtype=np.int64) - a
        idx = np.asarray(self._load(fmt.array_rel(layer, "expert", i, "coo_index"))[lo:hi], dtype=np.int64)
        acts[rows, idx] = fmt.from_storage(self._load(fmt.array_rel(layer, "expert", i, "coo_value"))[lo:hi], dtype)
        return tok, acts

    def expert(self, layer: int, expert: int, semantics: str = "routed", space: str = "expert",
               tokens: TokenSel = None) -> tuple[np.ndarray, np.ndarray]:
        """(token_idx int64 [r], acts float32 [r, D]) of one expert's neurons (see module doc)."""
        if semantics not in fmt.SEMANTICS:
            raise StoreError(f"unknown routing semantics {semantics!r}; use one of {', '.join(fmt.SEMANTICS)}")
        sel = self._token_sel(tokens)
        if space == "shared":
            target = np.arange(self.n_tokens) if sel is None else sel
            return target, self.dense(layer, "shared", target)
        if space != "expert":
            raise StoreError(f"expert() reads space 'expert' or 'shared', not {space!r}; use dense()")
        self._check_space(layer, "expert")
        if not 0 <= expert < self.num_experts(layer):
            raise StoreError(f"expert {expert} out of range; layer {layer} has {self.num_experts(layer)} experts")
        parts = [self._routed_rows(layer, expert, r) for r in self.manifest["shards"]]
        tok = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
        acts = (np.concatenate([p[1] for p in parts]) if parts
                else np.zeros((0, self.width(layer, "expert")), np.float32))
        if semantics == "routed":
            if sel is not None:
                keep = np.isin(tok, sel)
                tok, acts = tok[keep], acts[keep]
            return tok, acts
        target = np.arange(self.n_tokens) if sel is None else sel
        # Look rows up from the target side: a token is routed to an expert at most once, so
        # token -> row is a function, and a token asked for twice gets its row twice.
        row_of = np.full(self.n_tokens, -1, dtype=np.int64)
        row_of[tok] = np.arange(tok.size)
        rows = row_of[target]
        hit = rows >= 0
        vals = acts[rows[hit]]
        if semantics == "gated":
            self.routing(layer)
            ids, w = self._routing[layer]
            routed = target[hit]
            weight = (w[routed] * (ids[routed] == expert)).sum(axis=1)
            vals = vals * weight[:, None]
        out = np.zeros((target.size, acts.shape[1]), dtype=np.float32)
        out[hit] = vals
        return target, out

    # ---------------------------------------------------------------- dense spaces

    def dense(self, layer: int, space: str, tokens: TokenSel = None) -> np.ndarray:
        """float32 [n, W] values of a dense space (or a whole-expert space) on ``tokens``."""
        if self._derived.has(layer, space):
            return self._derived.dense(self, layer, space, self._token_sel(tokens))
        info = self._check_space(layer, space)
        sel = self._token_sel(tokens)
        if space in ("expert_gate", "expert_out"):
            ids, w = self.routing(layer)
            if space == "expert_out":
                w = np.concatenate([np.asarray(self._load(fmt.array_rel(layer, "routing", r["index"], "out")))
                                    for r in self.manifest["shards"]])
            if sel is not None:
                ids, w = ids[sel], w[sel]
            full = np.zeros((ids.shape[0], info["num_experts"]), dtype=np.float32)
            np.put_along_axis(full, ids, w, axis=1)
            return full
        if space not in fmt.DENSE_SPACES:
            raise StoreError(f"space {space!r} is not dense; read it with expert()")
        dtype = self.manifest["dtype"]
        shards = self.manifest["shards"]
        if sel is None:
            parts = [fmt.from_storage(self._load(fmt.array_rel(layer, space, r["index"])), dtype) for r in shards]
            return np.concatenate(parts) if parts else np.zeros((0, self.width(layer, space)), np.float32)
        out = np.zeros((sel.size, self.width(layer, space)), dtype=np.float32)
        shard_of = np.searchsorted(self._starts, sel, side="right") - 1
        for s in np.unique(shard_of):
            r = shards[int(s)]
            pick = np.flatnonzero(shard_of == s)
            block = self._load(fmt.array_rel(layer, space, r["index"]))
            out[pick] = fmt.from_storage(block[sel[pick] - r["start"]], dtype)
        return out

    # ---------------------------------------------------------------- statistics

    def unit_stats(self, layer: int, space: str, expert: int | None = None,
                   threshold: float = 0.0) -> dict[str, np.ndarray]:
        """Per-unit ``firing_rate`` (share of defined tokens with |a| > threshold), ``max``,
        ``mean``, ``dead`` (never fires) and ``count`` (tokens where the unit is defined).

        Expert neurons are defined on routed tokens only; with ``expert=None`` the arrays are
        [E, D], else [D]. Dense and whole-expert spaces are defined on every token.
        """
        self._check_space(layer, space)
        if space == "expert":
            experts = range(self.num_experts(layer)) if expert is None else [expert]
            per = []
            for e in experts:
                acc = UnitStats(self.width(layer, "expert"), threshold)
                for r in self.manifest["shards"]:
                    acc.add(self._routed_rows(layer, e, r)[1])
                per.append(acc.result())
            if expert is not None:
                return per[0]
            return {k: np.stack([p[k] for p in per]) for k in per[0]}
        acc = UnitStats(self.width(layer, space), threshold)
        if space in ("expert_gate", "expert_out"):
            acc.add(self.dense(layer, space))
        else:
            for r in self.manifest["shards"]:
                acc.add(self.dense(layer, space, np.arange(r["start"], r["stop"])))
        return acc.result()
