"""Token dispatch for the MoE layer: group (token, expert) pairs by expert and run the experts.

The N*k routed pairs are sorted once by expert (a stable sort, so within an expert tokens keep
their order). Expert e then owns the contiguous row segment ``offs[e-1]:offs[e]`` of the gathered
inputs, and the two expert matmuls run as one grouped GEMM each:

- ``grouped_mm``: :func:`torch.nn.functional.grouped_mm` with int32 cumulative offsets; it needs
  16-byte aligned row strides (d and D multiples of 4 for fp32), differentiable on CPU in
  fp32/bf16/fp16; on CUDA it is used for bf16 only (the documented kernel);
- ``segments``: a Python loop over the contiguous segments (one matmul per non-empty expert), the
  fallback wherever grouped_mm is missing or the shapes are not aligned.

Both return the rows in the same sorted order, so they are interchangeable and tested against a
naive per-token loop (tests/models/moe_reference.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

BACKENDS = ("auto", "grouped_mm", "segments")
"""Dispatch backends: ``auto`` picks grouped_mm when available and aligned, else segments."""


@dataclass
class Dispatch:
    """The (token, expert) rows of one forward, sorted by expert."""

    order: torch.Tensor
    """[R] long: position of each row in the flattened [N*k] top-k arrays"""
    token_idx: torch.Tensor
    """[R] long: the token of each row"""
    expert_idx: torch.Tensor
    """[R] long: the expert of each row (non-decreasing)"""
    counts: torch.Tensor
    """[M] long: rows per expert"""
    offs: torch.Tensor
    """[M] int32: cumulative counts (end of each expert's segment), as grouped_mm wants them"""


def sort_by_expert(topk_ids: torch.Tensor, num_experts: int) -> Dispatch:
    """Sort the N*k (token, expert) pairs of ``topk_ids`` [N, k] by expert, once."""
    k = topk_ids.shape[-1]
    flat = topk_ids.reshape(-1)
    expert_idx, order = flat.sort(stable=True)
    counts = torch.bincount(flat, minlength=num_experts)
    return Dispatch(order=order, token_idx=order.div(k, rounding_mode="floor"), expert_idx=expert_idx,
                    counts=counts, offs=counts.cumsum(0).to(torch.int32))


GROUPED_MM_DTYPES = {"cpu": (torch.float32, torch.bfloat16, torch.float16), "cuda": (torch.bfloat16,)}
"""dtypes grouped_mm is used for, per device type (CUDA kernels are documented for bf16 only)."""


def grouped_mm_usable(*tensors: torch.Tensor) -> bool:
    """True when grouped_mm exists, supports the device and dtype, and every operand has 16-byte
    aligned strides and pointers."""
    if not hasattr(F, "grouped_mm"):
        return False
    if any(t.dtype not in GROUPED_MM_DTYPES.get(t.device.type, ()) for t in tensors):
        return False
    for t in tensors:
        size = t.element_size()
        if t.data_ptr() % 16 or any((s * size) % 16 for s in t.stride()[:-1]) or t.stride(-1) != 1:
            return False
    return True


def _grouped(a: torch.Tensor, w: torch.Tensor, d: Dispatch) -> torch.Tensor:
    return F.grouped_mm(a, w, offs=d.offs)


def _segments(a: torch.Tensor, w: torch.Tensor, d: Dispatch) -> torch.Tensor:
    pieces, start = [], 0
    for e, c in enumerate(d.counts.tolist()):
        if c:
            pieces.append(a[start:start + c] @ w[e])
            start += c
    return torch.cat(pieces) if pieces else a.new_zeros(0, w.shape[-1])


def pick_backend(backend: str, xs: torch.Tensor, w_enc: torch.Tensor, w_dec: torch.Tensor) -> str:
    """Resolve ``auto`` to a concrete backend for these operands."""
    if backend == "auto":
        ok = grouped_mm_usable(xs, w_enc, w_dec) and w_enc.shape[-1] * w_enc.element_size() % 16 == 0
        return "grouped_mm" if ok else "segments"
    if backend not in BACKENDS:
        raise ValueError(f"unknown dispatch backend {backend!r}; choose one of {BACKENDS}")
    return backend


def run_experts(x: torch.Tensor, d: Dispatch, w_enc: torch.Tensor, b_enc: torch.Tensor | None,
                w_dec: torch.Tensor, act: Callable[[torch.Tensor], torch.Tensor],
                backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden [R, D] (post-activation, ungated) and output [R, d] (ungated) of every routed row.

    ``w_enc`` is [M, d, D] and ``w_dec`` [M, D, d] (input-major, the layout grouped_mm takes
    without a transpose), ``b_enc`` [M, D] or None.
    """
    xs = x.index_select(0, d.token_idx)
    mm = _grouped if pick_backend(backend, xs, w_enc, w_dec) == "grouped_mm" else _segments
    pre = mm(xs, w_enc, d)
    if b_enc is not None:
        pre = pre + b_enc.index_select(0, d.expert_idx)
    # ReLU in place: grouped_mm keeps its inputs, not its output, so the pre-activation buffer
    # can be reused (one [R, D] allocation less per layer)
    hidden = torch.relu_(pre) if act is F.relu else act(pre)
    return hidden, mm(hidden, w_dec, d)


def combine(out_rows: torch.Tensor, d: Dispatch, topk_weights: torch.Tensor, n_tokens: int) -> torch.Tensor:
    """Sum the gated rows back per token: y[t] = sum over its rows of weight * out."""
    w = topk_weights.reshape(-1).index_select(0, d.order).unsqueeze(-1)
    y = out_rows.new_zeros(n_tokens, out_rows.shape[-1])
    return y.index_add_(0, d.token_idx, out_rows * w.to(out_rows.dtype))  # in place: no copy of y
