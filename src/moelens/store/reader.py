"""Reading an activation store without loading more than an analysis asks for.

Arrays are opened with ``np.load(mmap_mode="r")`` and sliced, so reading one expert touches only
that expert's rows (rows are sorted by expert, then token, within each shard, with per-expert row
offsets), and a token selection reads only the selected rows of the shards that hold them. No
reader method keeps anything between calls, so memory is bounded by what a call returns plus one
shard's index arrays of one expert, whatever the store's size (see ``docs/scale.md`` for the
bounded-memory recipes: one (layer, expert) or one (layer, space) at a time, on token selections
or in token chunks with :meth:`ActivationStore.iter_expert` / :meth:`ActivationStore.iter_dense`).
Each file's sha256 is checked the first time it is read (streamed, in 1 MiB blocks); a mismatch is
a :class:`StoreError` naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from moelens.errors import StoreError
from moelens.rundir import sha256_file
from moelens.store import format as fmt
from moelens.store.derived import DerivedSpaces
from moelens.store.selection import TokenSel, chunk_ranges, pieces
from moelens.store.stats import UnitStats

DEFAULT_CHUNK_TOKENS = 65536
"""Tokens per chunk of :meth:`ActivationStore.iter_expert` / :meth:`ActivationStore.iter_dense`."""


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
        self._starts = np.array([rec["start"] for rec in manifest["shards"]], dtype=np.int64)
        self._stops = np.array([rec["stop"] for rec in manifest["shards"]], dtype=np.int64)

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

    def _pieces(self, sel: np.ndarray | None):
        return pieces(self._starts, self._stops, sel)

    def _token_columns(self, cols: slice, tokens: TokenSel) -> np.ndarray:
        sel = self._token_sel(tokens)
        width = len(range(len(fmt.TOKEN_COLUMNS))[cols])
        out = np.zeros((self.n_tokens if sel is None else sel.size, width), dtype=np.int64)
        shards = self.manifest["shards"]
        for s, local, pos in self._pieces(sel):
            out[pos] = self._load(fmt.tokens_rel(shards[s]["index"]))[local, cols]
        return out

    def tokens(self, tokens: TokenSel = None) -> np.ndarray:
        """int64 token ids of every recorded token, or of the selected ``tokens`` (indices or mask)."""
        return self._token_columns(slice(0, 1), tokens)[:, 0]

    def doc_ids(self, tokens: TokenSel = None) -> np.ndarray:
        return self._token_columns(slice(1, 2), tokens)[:, 0]

    def positions(self, tokens: TokenSel = None) -> np.ndarray:
        return self._token_columns(slice(2, 3), tokens)[:, 0]

    def offsets(self, tokens: TokenSel = None) -> np.ndarray:
        return self._token_columns(slice(3, 5), tokens)

    def documents(self) -> list[str]:
        return list(json.loads((self.root / self._load_documents()).read_text(encoding="utf-8")))

    def _load_documents(self) -> str:
        rel = self.manifest["documents"]["file"]
        if self.verify_reads and rel not in self._verified:
            self._check(rel, self._files[rel])
        return rel

    def chunks(self, chunk_tokens: int = DEFAULT_CHUNK_TOKENS) -> list[tuple[int, int]]:
        """Token ranges ``[start, stop)`` of about ``chunk_tokens`` tokens covering the store, cut
        at shard boundaries where possible (reading a range then opens as few files as it can)."""
        return chunk_ranges(self._starts, self._stops, chunk_tokens)

    # ---------------------------------------------------------------- routing and experts

    def routing(self, layer: int, tokens: TokenSel = None) -> tuple[np.ndarray, np.ndarray]:
        """Router top-k ids int64 [n, k] and weights float32 [n, k], exactly as the model used them,
        on every token or on the selected ``tokens``."""
        return self._routing_parts(layer, tokens, ("ids", "weights"))

    def _routing_parts(self, layer: int, tokens: TokenSel, parts: tuple[str, ...]) -> tuple[np.ndarray, ...]:
        info = self._layer(layer)
        if info["kind"] != "moe" or not info.get("routing"):
            raise StoreError(f"layer {layer} has no routing in this store (capture an expert space there)")
        sel = self._token_sel(tokens)
        n, k = (self.n_tokens if sel is None else sel.size), self.top_k(layer)
        outs = [np.zeros((n, k), dtype=np.int64 if part == "ids" else np.float32) for part in parts]
        shards = self.manifest["shards"]
        for s, local, pos in self._pieces(sel):
            for out, part in zip(outs, parts):
                out[pos] = self._load(fmt.array_rel(layer, "routing", shards[s]["index"], part))[local]
        return tuple(outs)

    def _expert_rows(self, layer: int, expert: int, record: dict[str, Any]) -> tuple[np.ndarray, int]:
        """Global token indices (ascending) of ``expert``'s rows in one shard, and its first row."""
        i = record["index"]
        offsets = self._load(fmt.array_rel(layer, "expert", i, "offsets"))
        a, b = int(offsets[expert]), int(offsets[expert + 1])
        return np.asarray(self._load(fmt.array_rel(layer, "expert", i, "token"))[a:b], dtype=np.int64), a

    def _values(self, layer: int, record: dict[str, Any], a: int, n_rows: int,
                rows: np.ndarray | None = None) -> np.ndarray:
        """float32 [r, D] values of rows ``a + rows`` of one shard (all ``n_rows`` rows from ``a``
        when ``rows`` is None); only those rows are read, in either layout."""
        i, width, dtype = record["index"], self.width(layer, "expert"), self.manifest["dtype"]
        if record["expert_layout"][str(layer)] == "rows":
            block = self._load(fmt.array_rel(layer, "expert", i, "values"))
            picked = block[a:a + n_rows] if rows is None else block[a + rows]
            return np.array(fmt.from_storage(picked, dtype), dtype=np.float32)
        coo_row = self._load(fmt.array_rel(layer, "expert", i, "coo_row"))
        lo, hi = np.searchsorted(coo_row, [a, a + n_rows])
        rel = np.asarray(coo_row[lo:hi], dtype=np.int64) - a
        idx = np.asarray(self._load(fmt.array_rel(layer, "expert", i, "coo_index"))[lo:hi], dtype=np.int64)
        val = self._load(fmt.array_rel(layer, "expert", i, "coo_value"))[lo:hi]
        if rows is None:
            out = np.zeros((n_rows, width), dtype=np.float32)
            out[rel, idx] = fmt.from_storage(val, dtype)
            return out
        uniq, inverse = np.unique(rows, return_inverse=True)  # a row may be asked for twice
        where = np.full(n_rows, -1, dtype=np.int64)
        where[uniq] = np.arange(uniq.size)
        keep = where[rel] >= 0
        out = np.zeros((uniq.size, width), dtype=np.float32)
        out[where[rel[keep]], idx[keep]] = fmt.from_storage(np.asarray(val)[keep], dtype)
        return out[inverse.reshape(-1)]

    def expert(self, layer: int, expert: int, semantics: str = "routed", space: str = "expert",
               tokens: TokenSel = None) -> tuple[np.ndarray, np.ndarray]:
        """(token_idx int64 [r], acts float32 [r, D]) of one expert's neurons (see module doc).

        Only the rows asked for are read: a selection of m tokens costs m x D floats however
        large the store is (``routed`` without a selection returns every routed row)."""
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
        if semantics == "routed":
            return self._routed(layer, expert, None if sel is None else np.unique(sel))
        return self._filled(layer, expert, sel, gated=semantics == "gated")

    def _routed(self, layer: int, expert: int, sel: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Rows of tokens routed to ``expert`` (among the sorted unique ``sel``), in token order."""
        toks, acts = [], []
        shards = self.manifest["shards"]
        for s, local, _ in self._pieces(sel):
            record = shards[s]
            tok, a = self._expert_rows(layer, expert, record)
            if sel is None:
                toks.append(tok)
                acts.append(self._values(layer, record, a, tok.size))
                continue
            want = local + record["start"] if isinstance(local, np.ndarray) else None
            j = np.searchsorted(tok, want)
            hit = j < tok.size
            hit[hit] = tok[j[hit]] == want[hit]
            rows = j[hit]
            toks.append(tok[rows])
            acts.append(self._values(layer, record, a, tok.size, rows))
        width = self.width(layer, "expert")
        return (np.concatenate(toks) if toks else np.zeros(0, np.int64),
                np.concatenate(acts) if acts else np.zeros((0, width), np.float32))

    def _filled(self, layer: int, expert: int, sel: np.ndarray | None,
                gated: bool) -> tuple[np.ndarray, np.ndarray]:
        """Every selected token (repeats repeated), zero where ``expert`` was not routed; ``gated``
        multiplies by the router weight."""
        target = np.arange(self.n_tokens) if sel is None else sel
        out = np.zeros((target.size, self.width(layer, "expert")), dtype=np.float32)
        shards = self.manifest["shards"]
        for s, local, pos in self._pieces(sel):
            record = shards[s]
            tok, a = self._expert_rows(layer, expert, record)
            want = np.arange(record["start"], record["stop"])[local]
            j = np.searchsorted(tok, want)
            hit = j < tok.size
            hit[hit] = tok[j[hit]] == want[hit]
            if not hit.any():
                continue
            vals = self._values(layer, record, a, tok.size, j[hit])
            if gated:
                i = record["index"]
                at = want[hit] - record["start"]
                ids = self._load(fmt.array_rel(layer, "routing", i, "ids"))[at].astype(np.int64)
                w = np.asarray(self._load(fmt.array_rel(layer, "routing", i, "weights"))[at])
                vals = vals * (w * (ids == expert)).sum(axis=1, dtype=np.float32)[:, None]
            out[np.arange(target.size)[pos][hit]] = vals
        return target, out

    def iter_expert(self, layer: int, expert: int, semantics: str = "routed",
                    chunk_tokens: int = DEFAULT_CHUNK_TOKENS) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """:meth:`expert` over the whole store, one token range of about ``chunk_tokens`` tokens at
        a time: the way to scan an expert (e.g. for its top activations) in bounded memory."""
        for start, stop in self.chunks(chunk_tokens):
            yield self.expert(layer, expert, semantics, tokens=np.arange(start, stop))

    def iter_dense(self, layer: int, space: str, chunk_tokens: int = DEFAULT_CHUNK_TOKENS
                   ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(token_idx, :meth:`dense` values) over the whole store, one token range at a time."""
        for start, stop in self.chunks(chunk_tokens):
            tok = np.arange(start, stop)
            yield tok, self.dense(layer, space, tok)

    # ---------------------------------------------------------------- dense spaces

    def dense(self, layer: int, space: str, tokens: TokenSel = None) -> np.ndarray:
        """float32 [n, W] values of a dense space (or a whole-expert space) on ``tokens``."""
        if self._derived.has(layer, space):
            return self._derived.dense(self, layer, space, self._token_sel(tokens))
        info = self._check_space(layer, space)
        sel = self._token_sel(tokens)
        if space in ("expert_gate", "expert_out"):
            parts = ("ids", "weights") if space == "expert_gate" else ("ids", "out")
            ids, w = self._routing_parts(layer, sel, parts)
            full = np.zeros((ids.shape[0], info["num_experts"]), dtype=np.float32)
            np.put_along_axis(full, ids, w, axis=1)
            return full
        if space not in fmt.DENSE_SPACES:
            raise StoreError(f"space {space!r} is not dense; read it with expert()")
        dtype = self.manifest["dtype"]
        shards = self.manifest["shards"]
        out = np.zeros((self.n_tokens if sel is None else sel.size, self.width(layer, space)), dtype=np.float32)
        for s, local, pos in self._pieces(sel):
            block = self._load(fmt.array_rel(layer, space, shards[s]["index"]))
            out[pos] = fmt.from_storage(block[local], dtype)
        return out

    # ---------------------------------------------------------------- statistics

    def unit_stats(self, layer: int, space: str, expert: int | None = None,
                   threshold: float = 0.0) -> dict[str, np.ndarray]:
        """Per-unit ``firing_rate`` (share of defined tokens with |a| > threshold), ``max``,
        ``mean``, ``dead`` (never fires) and ``count`` (tokens where the unit is defined).

        Expert neurons are defined on routed tokens only; with ``expert=None`` the arrays are
        [E, D], else [D]. Dense and whole-expert spaces are defined on every token. Streams one
        shard at a time.
        """
        self._check_space(layer, space)
        if space == "expert":
            experts = range(self.num_experts(layer)) if expert is None else [expert]
            per = []
            for e in experts:
                acc = UnitStats(self.width(layer, "expert"), threshold)
                for r in self.manifest["shards"]:
                    tok, a = self._expert_rows(layer, e, r)
                    acc.add(self._values(layer, r, a, tok.size))
                per.append(acc.result())
            if expert is not None:
                return per[0]
            return {k: np.stack([p[k] for p in per]) for k in per[0]}
        acc = UnitStats(self.width(layer, space), threshold)
        for r in self.manifest["shards"]:
            acc.add(self.dense(layer, space, np.arange(r["start"], r["stop"])))
        return acc.result()
