"""Writing one shard of an activation store.

A :class:`ShardWriter` collects the records of one shard (a deterministic run of whole context
windows) as capture produces them, then writes every array to a temporary name, renames it into
place, and finally writes the shard's completion record ``shards/NNNNN.json`` holding each
file's sha256. A shard without that record does not exist as far as resume and the manifest are
concerned, so a crash at any point leaves nothing that looks complete.

Memory is bounded by one shard: dense spaces and routing are preallocated for the shard's
tokens, expert rows are kept (already in the stored dtype) until the shard is written.
"""

from __future__ import annotations

import functools
import hashlib
import io
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from moelens.rundir import atomic_path, atomic_write_json
from moelens.store import format as fmt


@dataclass
class LayerPlan:
    """What is recorded at one layer, with the widths the adapter reports."""

    layer: int
    kind: str  # "moe" or "dense"
    spaces: list[str]
    widths: dict[str, int]
    num_experts: int = 0
    top_k: int = 0
    sparse_experts: bool = False

    @property
    def needs_routing(self) -> bool:
        return self.kind == "moe" and any(s in self.spaces for s in ("expert", "expert_gate", "expert_out"))

    def to_json(self) -> dict[str, Any]:
        return {"layer": self.layer, "kind": self.kind, "spaces": list(self.spaces),
                "widths": dict(self.widths), "num_experts": self.num_experts, "top_k": self.top_k,
                "sparse_experts": self.sparse_experts, "routing": self.needs_routing}


def save_array(root: Path, rel: str, array: np.ndarray) -> dict[str, Any]:
    """Write ``array`` as ``root/rel`` in ``.npy`` format (temp name + rename); return its entry.

    The sha256 is taken from the bytes in memory as they are written, so the file is not read
    back; it is the same digest :func:`moelens.rundir.sha256_file` gives for the file.
    """
    path = root / rel
    array = np.require(array, requirements="C")  # keeps 0-d arrays 0-d
    header = io.BytesIO()
    meta = npy_format.header_data_from_array_1_0(array)
    try:
        npy_format.write_array_header_1_0(header, meta)
    except ValueError:  # a header over 64 KiB needs format 2.0 (as np.save would choose)
        header = io.BytesIO()
        npy_format.write_array_header_2_0(header, meta)
    body = memoryview(array.reshape(-1).view(np.uint8))
    digest = hashlib.sha256(header.getbuffer())
    digest.update(body)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(header.getbuffer())
        fh.write(body)
    return {"sha256": digest.hexdigest(), "rows": int(array.shape[0]) if array.ndim else 1,
            "shape": list(array.shape), "dtype": str(array.dtype),
            "bytes": len(header.getbuffer()) + body.nbytes}


@dataclass
class _ExpertRows:
    token: list[np.ndarray] = field(default_factory=list)
    expert: list[np.ndarray] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)
    norm: list[np.ndarray] = field(default_factory=list)


def _gather_rows(chunks: list[np.ndarray], order: np.ndarray, width: int,
                 dtype: np.dtype) -> np.ndarray:
    """``concatenate(chunks)[order]`` with one copy of the rows instead of two.

    Each chunk is scattered straight to its rows' sorted positions; the rows are the bulk of a
    shard (tokens x top-k x expert width), so the saved pass matters to capture overhead.
    """
    out = np.empty((order.size, width), dtype=dtype)
    dest = np.empty_like(order)
    dest[order] = np.arange(order.size)
    start = 0
    for chunk in chunks:
        out[dest[start:start + len(chunk)]] = chunk
        start += len(chunk)
    return out


class ShardWriter:
    """Accumulates and writes the records of shard ``index`` covering tokens [start, stop)."""

    def __init__(self, root: Path, index: int, start: int, stop: int, plans: list[LayerPlan],
                 dtype: str):
        self.root, self.index, self.start, self.stop = Path(root), index, start, stop
        self.plans = {p.layer: p for p in plans}
        self.dtype = dtype
        n = stop - start
        self.token_table = np.full((n, len(fmt.TOKEN_COLUMNS)), -1, dtype=np.int64)
        self.routing_ids: dict[int, np.ndarray] = {}
        self.routing_w: dict[int, np.ndarray] = {}
        self.dense: dict[tuple[int, str], np.ndarray] = {}
        self.filled: dict[tuple[int, str], np.ndarray] = {}
        self.rows: dict[int, _ExpertRows] = {}
        for p in plans:
            if p.needs_routing:
                self.routing_ids[p.layer] = np.zeros((n, p.top_k), dtype=fmt.index_dtype(p.num_experts))
                self.routing_w[p.layer] = np.zeros((n, p.top_k), dtype=np.float32)
                self.filled[(p.layer, "routing")] = np.zeros(n, dtype=bool)
            if "expert" in p.spaces or "expert_out" in p.spaces:
                self.rows[p.layer] = _ExpertRows()
            for s in p.spaces:
                if s in fmt.DENSE_SPACES:
                    self.dense[(p.layer, s)] = np.zeros((n, p.widths[s]), dtype=np.float32)
                    self.filled[(p.layer, s)] = np.zeros(n, dtype=bool)

    # ---------------------------------------------------------------- records from capture

    def add_tokens(self, tok: np.ndarray, table: np.ndarray) -> None:
        self.token_table[tok - self.start] = table

    def add_routing(self, layer: int, tok: np.ndarray, ids: np.ndarray, weights: np.ndarray) -> None:
        if layer not in self.routing_ids:
            return
        local = tok - self.start
        self.routing_ids[layer][local] = ids
        self.routing_w[layer][local] = weights
        self.filled[(layer, "routing")][local] = True

    def add_expert_rows(self, layer: int, tok: np.ndarray, expert: np.ndarray,
                        values: np.ndarray | None, out_norm: np.ndarray | None) -> None:
        """Rows (token, expert): ``values`` already in the stored representation
        (:func:`moelens.store.format.to_storage`), ``out_norm`` float32 ||expert output||."""
        acc = self.rows.get(layer)
        if acc is None:
            return
        plan = self.plans[layer]
        acc.token.append(tok.astype(np.int64))
        acc.expert.append(expert.astype(np.int64))
        if "expert" in plan.spaces:
            acc.values.append(values)
        if "expert_out" in plan.spaces:
            acc.norm.append(out_norm.astype(np.float32))

    def add_dense(self, layer: int, space: str, tok: np.ndarray, values: np.ndarray) -> None:
        key = (layer, space)
        if key not in self.dense:
            return
        self.dense[key][tok - self.start] = values
        self.filled[key][tok - self.start] = True

    # ---------------------------------------------------------------- writing

    def finish(self, pool: Executor | None = None) -> dict[str, Any]:
        """Write every array, then the completion record; return the record.

        With ``pool`` the layers are written concurrently (sorting, hashing and file writes
        release the GIL); the record lists the files in the same order either way.
        """
        missing = [f"L{k[0]} {k[1]}" for k, m in self.filled.items() if not m.all()]
        if missing or (self.token_table[:, 0] < 0).any():
            raise RuntimeError(f"shard {self.index}: the adapter did not report every token for "
                               f"{', '.join(missing) or 'tokens'}; this is a bug in the adapter")
        jobs = [self._write_tokens] + [functools.partial(self._write_layer, layer) for layer in self.plans]
        done = list(pool.map(lambda job: job(), jobs)) if pool is not None else [job() for job in jobs]
        files: dict[str, Any] = {}
        layouts: dict[str, str] = {}
        for job_files, job_layouts in done:
            files.update(job_files)
            layouts.update(job_layouts)
        record = {"index": self.index, "start": self.start, "stop": self.stop,
                  "expert_layout": layouts, "files": files}
        atomic_write_json(fmt.shard_record_path(self.root, self.index), record)
        return record

    def _write_tokens(self) -> tuple[dict[str, Any], dict[str, str]]:
        rel = fmt.tokens_rel(self.index)
        return {rel: save_array(self.root, rel, self.token_table)}, {}

    def _write_layer(self, layer: int) -> tuple[dict[str, Any], dict[str, str]]:
        """Every file of one layer: its file entries and its expert layout (if any)."""
        plan = self.plans[layer]
        files: dict[str, Any] = {}
        layouts: dict[str, str] = {}
        if plan.needs_routing:
            self._write_routing(layer, files)
        if "expert" in plan.spaces:
            layouts[f"{layer}"] = self._write_expert(layer, files)
        for s in plan.spaces:
            if s in fmt.DENSE_SPACES:
                rel = fmt.array_rel(layer, s, self.index)
                files[rel] = save_array(self.root, rel, fmt.to_storage(self.dense[(layer, s)], self.dtype))
        return files, layouts

    def _sorted_rows(self, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        acc = self.rows[layer]
        tok = np.concatenate(acc.token) if acc.token else np.zeros(0, np.int64)
        exp = np.concatenate(acc.expert) if acc.expert else np.zeros(0, np.int64)
        order = np.lexsort((tok, exp))
        return tok, exp, order

    def _write_routing(self, layer: int, files: dict[str, Any]) -> None:
        plan = self.plans[layer]
        ids, w = self.routing_ids[layer], self.routing_w[layer]
        for part, arr in (("ids", ids), ("weights", w)):
            rel = fmt.array_rel(layer, "routing", self.index, part)
            files[rel] = save_array(self.root, rel, arr)
        if "expert_out" in plan.spaces:
            tok, exp, _ = self._sorted_rows(layer)
            norm = np.concatenate(self.rows[layer].norm) if self.rows[layer].norm else np.zeros(0, np.float32)
            local = tok - self.start
            match = ids[local].astype(np.int64) == exp[:, None]
            if not match.any(axis=1).all():
                raise RuntimeError(f"layer {layer}: expert rows do not match the routing; adapter bug")
            slot = match.argmax(axis=1)
            out = np.zeros_like(w)
            out[local, slot] = w[local, slot] * norm
            rel = fmt.array_rel(layer, "routing", self.index, "out")
            files[rel] = save_array(self.root, rel, out)

    def _write_expert(self, layer: int, files: dict[str, Any]) -> str:
        plan = self.plans[layer]
        tok, exp, order = self._sorted_rows(layer)
        width = plan.widths["expert"]
        acc = self.rows[layer]
        store_dt = fmt.to_storage(np.zeros(0, np.float32), self.dtype).dtype
        values = _gather_rows(acc.values, order, width, store_dt)
        tok, exp = tok[order], exp[order]
        offsets = np.zeros(plan.num_experts + 1, dtype=np.int64)
        np.cumsum(np.bincount(exp, minlength=plan.num_experts), out=offsets[1:])
        arrays = {"token": tok, "offsets": offsets}
        idx_dt = fmt.index_dtype(width)
        bits = values.view(np.uint32 if values.dtype.itemsize == 4 else np.uint16)  # fast count
        coo_bytes = np.count_nonzero(bits) * (4 + idx_dt.itemsize + fmt.value_bytes(self.dtype))
        layout = "coo" if plan.sparse_experts or coo_bytes < values.nbytes else "rows"
        if layout == "coo":
            nz_row, nz_idx = np.nonzero(bits)
            arrays.update(coo_row=nz_row.astype(np.int32), coo_index=nz_idx.astype(idx_dt),
                          coo_value=values[nz_row, nz_idx])
        else:
            arrays["values"] = values
        for part, arr in arrays.items():
            rel = fmt.array_rel(layer, "expert", self.index, part)
            files[rel] = save_array(self.root, rel, arr)
        return layout
