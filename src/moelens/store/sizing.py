"""How many bytes a store will take, from its layer plans, before anything is captured.

The estimate follows the format (:mod:`.format`) file by file: per shard, the token table; per
MoE layer the routing ids, weights (and ``expert_out`` norms), the expert rows' token index and
offsets and their values (``rows``: R x D values; ``coo``: one row number, unit index and value
per nonzero, chosen per shard as the writer chooses); per dense space an [n, W] block; an ``.npy``
header on every file (computed by numpy itself); and the JSON records (shard records, the
manifest that repeats them, capture.json) and documents.json. R = n x top_k rows.

What it cannot know in advance is given to it: the share of nonzero expert activations (for ReLU
experts, measured on a trial batch) and the bytes of document text per token.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from moelens.store import format as fmt

_RECORD_ENTRY = 265
"""JSON bytes of one file's entry (path, sha256, rows, shape, dtype, bytes) as ``atomic_write_json``
indents it, on average over its two copies (shard record and manifest; measured 241 and 312)."""
_FIXED_JSON = 7500
"""manifest.json and capture.json beyond their per-file entries: settings, layer info, config."""


def _header(dtype: np.dtype, shape: tuple[int, ...]) -> int:
    """Bytes of the ``.npy`` header numpy writes for an array of ``dtype`` and ``shape``."""
    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": npy_format.dtype_to_descr(np.dtype(dtype)),
                                            "fortran_order": False, "shape": shape})
    return len(buf.getvalue())


def _file(dtype: Any, shape: tuple[int, ...]) -> int:
    return _header(np.dtype(dtype), shape) + int(np.prod(shape)) * np.dtype(dtype).itemsize


@dataclass
class SizeEstimate:
    """Expected bytes of a store: per (layer, part) where part is a unit space or ``routing``,
    and the bookkeeping (token tables, headers of those, JSON records, documents)."""

    n_tokens: int
    n_shards: int
    parts: dict[tuple[int, str], int] = field(default_factory=dict)
    tokens: int = 0
    records: int = 0
    documents: int = 0

    @property
    def total(self) -> int:
        return sum(self.parts.values()) + self.tokens + self.records + self.documents

    def lines(self) -> list[str]:
        """A readable table: one line per (layer, part), then the bookkeeping and the total."""
        per = max(self.n_tokens, 1)
        out = [f"{'layer':>6}  {'space':<12}{'bytes':>14}  {'per token':>10}"]
        for (layer, part), b in sorted(self.parts.items()):
            out.append(f"{layer:>6}  {part:<12}{human(b):>14}  {b / per:>10.1f}")
        for name, b in (("tokens", self.tokens), ("records", self.records), ("documents", self.documents)):
            out.append(f"{'':>6}  {name:<12}{human(b):>14}  {b / per:>10.1f}")
        out.append(f"{'':>6}  {'total':<12}{human(self.total):>14}  {self.total / per:>10.1f}")
        return out


def even_shards(n_tokens: int, shard_tokens: int) -> list[int]:
    """Shard sizes of ``n_tokens`` tokens cut every ``shard_tokens`` (the last one shorter); a
    capture closes shards at window boundaries, so its shards are a little longer."""
    n_shards = max(1, math.ceil(n_tokens / shard_tokens))
    return [shard_tokens] * (n_shards - 1) + [n_tokens - shard_tokens * (n_shards - 1)]


def estimate(layers: list[dict[str, Any]], sizes: list[int], dtype: str,
             density: dict[int, float] | None = None, doc_bytes_per_token: float = 0.0) -> SizeEstimate:
    """Expected bytes of a store whose shards hold ``sizes`` tokens each.

    ``layers`` are layer plans in their JSON form (``LayerPlan.to_json()``: layer, kind, spaces,
    widths, num_experts, top_k, sparse_experts); ``density`` the share of nonzero expert
    activations per layer (default: 1, dense rows); ``doc_bytes_per_token`` the document text.
    """
    n_tokens, n_shards = int(sum(sizes)), len(sizes)
    vb = fmt.value_bytes(dtype)
    store_dt = fmt.to_storage(np.zeros(0, np.float32), dtype).dtype
    est = SizeEstimate(n_tokens, n_shards)
    n_files = n_shards  # token tables
    est.tokens = sum(_file(np.int64, (n, len(fmt.TOKEN_COLUMNS))) for n in sizes)
    for info in layers:
        layer, spaces = int(info["layer"]), list(info["spaces"])
        E, k = int(info.get("num_experts") or 0), int(info.get("top_k") or 0)
        widths = info["widths"]
        add = lambda part, b: est.parts.__setitem__((layer, part), est.parts.get((layer, part), 0) + b)  # noqa: E731
        for n in sizes:
            if info.get("routing") or (info["kind"] == "moe" and set(spaces) & {"expert", "expert_gate", "expert_out"}):
                add("routing", _file(fmt.index_dtype(E), (n, k)) + _file(np.float32, (n, k)))
                n_files += 2
                if "expert_out" in spaces:
                    add("routing", _file(np.float32, (n, k)))
                    n_files += 1
            if "expert" in spaces:
                R, D = n * k, int(widths["expert"])
                index = _file(np.int64, (R,)) + _file(np.int64, (E + 1,))
                rows = _file(store_dt, (R, D))
                rho = 1.0 if density is None else float(density.get(layer, 1.0))
                nnz = int(round(rho * R * D))
                idx_dt = fmt.index_dtype(D)
                coo = _file(np.int32, (nnz,)) + _file(idx_dt, (nnz,)) + _file(store_dt, (nnz,))
                coo_raw = nnz * (4 + idx_dt.itemsize + vb)
                sparse = bool(info.get("sparse_experts")) or coo_raw < R * D * vb
                add("expert", index + (coo if sparse else rows))
                n_files += 5 if sparse else 3
            for s in spaces:
                if s in fmt.DENSE_SPACES:
                    add(s, _file(store_dt, (n, int(widths[s]))))
                    n_files += 1
    est.records = 2 * n_files * _RECORD_ENTRY + n_shards * 200 + _FIXED_JSON
    est.documents = int(round(doc_bytes_per_token * n_tokens)) + 2
    return est


def human(n: float) -> str:
    """Bytes in B, KiB, MiB, GiB or TiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"

