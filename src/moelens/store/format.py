"""The on-disk layout of an activation store, shared by the writer and the reader.

A store is a directory::

    manifest.json                    written last; a store without it is incomplete
    capture.json                     the settings of a capture in progress (for resume checks)
    documents.json                   document texts, index = doc id
    shards/00000.json                one completion record per shard (files + sha256)
    tokens/00000.npy                 int64 [n, 5]: token id, doc id, position (index in the
                                     model's context window), char start, char end in the document
    L003/routing/00000.ids.npy       router top-k ids [n, k] (uint8/int16/int32)
    L003/routing/00000.weights.npy   router top-k weights [n, k] float32
    L003/routing/00000.out.npy       weight x ||expert output|| per top-k slot [n, k] float32
    L003/expert/00000.token.npy      rows sorted by (expert, token): global token index int64 [R]
    L003/expert/00000.offsets.npy    int64 [E + 1]: rows of expert e are offsets[e]:offsets[e+1]
    L003/expert/00000.values.npy     "rows" layout: hidden vector per row [R, D]
    L003/expert/00000.coo_row.npy    "coo" layout: row number (into token) of each nonzero, int32
    L003/expert/00000.coo_index.npy  "coo" layout: unit index of each nonzero
    L003/expert/00000.coo_value.npy  "coo" layout: value of each nonzero
    L003/resid/00000.npy             dense spaces (resid, ffn, shared): [n, W]

Shards are consecutive runs of whole context windows, closed once they hold ``shard_tokens``
tokens, so their boundaries depend only on the token stream. Values are stored as fp16, fp32 or
bf16 (bf16 as its raw 16 bits in uint16, since numpy has no bfloat16).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
FORMAT_NAME = "moelens-activation-store"

#: every unit space a capture can record, in the DESIGN vocabulary
SPACES = ("expert", "expert_gate", "expert_out", "shared", "ffn", "resid")
#: spaces that exist only on MoE layers
MOE_SPACES = ("expert", "expert_gate", "expert_out", "shared")
#: spaces stored as dense [n, W] blocks
DENSE_SPACES = ("ffn", "resid", "shared")
#: the three readings of an expert neuron on tokens (see DESIGN "routing semantics")
SEMANTICS = ("routed", "gated", "zero_filled")

DTYPES = ("fp16", "bf16", "fp32")

TOKEN_COLUMNS = ("id", "doc", "position", "start", "end")


def shard_name(index: int) -> str:
    return f"{index:05d}"


def layer_dir(layer: int) -> str:
    return f"L{layer:03d}"


def shard_record_path(root: Path, index: int) -> Path:
    return root / "shards" / f"{shard_name(index)}.json"


def tokens_rel(index: int) -> str:
    return f"tokens/{shard_name(index)}.npy"


def array_rel(layer: int, space: str, index: int, part: str | None = None) -> str:
    """Relative path of one array of one (layer, space) in one shard."""
    suffix = f".{part}" if part else ""
    return f"{layer_dir(layer)}/{space}/{shard_name(index)}{suffix}.npy"


def to_storage(values: np.ndarray, dtype: str) -> np.ndarray:
    """float32 values -> the stored representation of ``dtype``."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    if dtype == "fp32":
        return values
    if dtype == "fp16":
        return values.astype(np.float16)
    if dtype == "bf16":  # round to nearest even on the upper 16 bits
        bits = values.view(np.uint32).astype(np.uint64)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        nan = np.isnan(values)
        out = rounded.astype(np.uint16)
        out[nan] = 0x7FC0
        return out
    raise ValueError(f"unknown store dtype {dtype!r}")


def from_storage(stored: np.ndarray, dtype: str) -> np.ndarray:
    """The stored representation -> float32."""
    if dtype == "bf16":
        return (np.asarray(stored, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
    return np.asarray(stored, dtype=np.float32)


def value_bytes(dtype: str) -> int:
    return 4 if dtype == "fp32" else 2


def index_dtype(n: int) -> np.dtype:
    """Smallest unsigned/signed integer type holding 0..n-1 (expert ids, unit indices)."""
    if n <= 256:
        return np.dtype(np.uint8)
    if n <= 32768:
        return np.dtype(np.int16)
    return np.dtype(np.int32)
