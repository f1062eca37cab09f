"""The capture loop: run the model over planned shards, route the adapter's callbacks into shards.

The adapter (``moelens.capture.adapters``) knows where a family keeps its router, experts and
MLPs; it calls a *sink* with tensors flattened to N = batch * seq rows. :class:`StoreSink` maps
those rows to global token indices, drops padding (pads are routed like any token, so every
record is masked here), moves what is needed to the CPU and hands it to the shard's writer.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from moelens.capture.placement import input_device
from moelens.capture.windows import ShardPlan, Window
from moelens.errors import ConfigError
from moelens.store import format as fmt
from moelens.store.writer import LayerPlan, ShardWriter


def plan_layers(adapter: Any, layers: list[int] | None, spaces: list[str] | None) -> list[LayerPlan]:
    """Which spaces to record at which layers, validated against the adapter's description."""
    moe, dense = set(adapter.moe_layers()), set(adapter.dense_layers())
    known = sorted(moe | dense)
    chosen = known if not layers else list(dict.fromkeys(layers))
    for l in chosen:
        if l not in known:
            raise ConfigError(f"layer {l} is out of range; the model has layers {known[0]}..{known[-1]}"
                              if known else "the model has no layers an adapter can capture")
    wanted = list(fmt.SPACES) if not spaces else list(dict.fromkeys(spaces))
    for s in wanted:
        if s not in fmt.SPACES:
            raise ConfigError(f"unknown space {s!r}; choose from {', '.join(fmt.SPACES)}")
    plans, used = [], set()
    for l in sorted(chosen):
        if l in moe:
            E = adapter.num_experts(l)
            widths = {"expert": adapter.expert_width(l), "expert_gate": E, "expert_out": E,
                      "resid": adapter.hidden_size}
            if adapter.shared_width(l) > 0:
                widths["shared"] = adapter.shared_width(l)
            here = [s for s in wanted if s in widths]
            plan = LayerPlan(l, "moe", here, {s: widths[s] for s in here}, E, adapter.top_k(l),
                             bool(adapter.expert_act_is_sparse(l)))
        else:
            widths = {"ffn": adapter.ffn_width(l), "resid": adapter.hidden_size}
            here = [s for s in wanted if s in widths]
            plan = LayerPlan(l, "dense", here, {s: widths[s] for s in here})
        used.update(here)
        if here:
            plans.append(plan)
    unused = [s for s in wanted if s not in used]
    if spaces and unused:
        raise ConfigError(f"space {unused[0]!r} does not exist at any chosen layer "
                          f"({', '.join(map(str, sorted(chosen)))}); drop it or choose other layers")
    return plans


def _f32(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float32).cpu().numpy()


def _stored(t: torch.Tensor, dtype: str) -> np.ndarray:
    """``t`` in the store's value representation, converted on the device (halves the copy)."""
    t = t.detach()
    if dtype == "fp32":
        return t.to(torch.float32).cpu().numpy()
    if dtype == "fp16":
        return t.to(torch.float16).cpu().numpy()
    return t.to(torch.bfloat16).cpu().view(torch.int16).numpy().view(np.uint16)


class StoreSink:
    """Adapter callbacks -> the current shard writer, in global token indices, pads dropped."""

    def __init__(self, plans: list[LayerPlan], dtype: str):
        self.plans = {p.layer: p for p in plans}
        self.dtype = dtype
        self.writer: ShardWriter | None = None
        self.token_map: torch.Tensor | None = None  # [N] global token index, -1 for pads

    def begin(self, writer: ShardWriter, token_map: torch.Tensor) -> None:
        self.writer, self.token_map = writer, token_map

    def _rows(self, n: int) -> tuple[torch.Tensor, np.ndarray]:
        tmap = self.token_map
        if tmap is None or tmap.numel() != n:
            raise RuntimeError(f"adapter reported {n} rows for a batch of {None if tmap is None else tmap.numel()}")
        keep = tmap >= 0
        return keep, tmap[keep].cpu().numpy()

    def routing(self, layer: int, topk_ids: torch.Tensor, topk_weights: torch.Tensor) -> None:
        if layer not in self.plans:
            return
        keep, tok = self._rows(topk_ids.shape[0])
        keep = keep.to(topk_ids.device)  # layers of a split model run on different devices
        self.writer.add_routing(layer, tok, topk_ids[keep].cpu().numpy(), _f32(topk_weights[keep]))

    def expert_rows(self, layer: int, token_idx: torch.Tensor, expert_idx: torch.Tensor,
                    hidden: torch.Tensor, out: torch.Tensor | None) -> None:
        plan = self.plans.get(layer)
        if plan is None or not ({"expert", "expert_out"} & set(plan.spaces)):
            return
        tok = self.token_map[token_idx.to(self.token_map.device)]
        keep = tok >= 0
        if bool(keep.all()):  # no padding in this batch: skip the masked copies
            keep_dev = slice(None)
        else:
            keep_dev = keep.to(hidden.device)
            tok = tok[keep]
        values = _stored(hidden[keep_dev], self.dtype) if "expert" in plan.spaces else None
        norm = (_f32(out[keep_dev].to(torch.float32).norm(dim=-1)) if "expert_out" in plan.spaces
                else None)
        self.writer.add_expert_rows(layer, tok.cpu().numpy(), expert_idx[keep_dev].cpu().numpy(),
                                    values, norm)

    def _dense(self, layer: int, space: str, hidden: torch.Tensor) -> None:
        plan = self.plans.get(layer)
        if plan is None or space not in plan.spaces:
            return
        hidden = hidden.reshape(-1, hidden.shape[-1])
        keep, tok = self._rows(hidden.shape[0])
        self.writer.add_dense(layer, space, tok, _f32(hidden[keep.to(hidden.device)]))

    def shared(self, layer: int, hidden: torch.Tensor, out: torch.Tensor | None = None) -> None:
        self._dense(layer, "shared", hidden)

    def ffn(self, layer: int, hidden: torch.Tensor) -> None:
        self._dense(layer, "ffn", hidden)

    def resid(self, layer: int, hidden: torch.Tensor) -> None:
        self._dense(layer, "resid", hidden)


def pad_batch(windows: list[Window], starts: list[int], pad_id: int) -> tuple[torch.Tensor, ...]:
    """Right-padded ids, attention mask and the global index of each position (-1 for pads);
    ``starts`` holds the global index of each window's first token."""
    T = max(w.ids.size for w in windows)
    ids = torch.full((len(windows), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(windows), T), dtype=torch.long)
    tmap = torch.full((len(windows), T), -1, dtype=torch.long)
    for b, (w, g) in enumerate(zip(windows, starts)):
        n = w.ids.size
        ids[b, :n] = torch.from_numpy(w.ids)
        mask[b, :n] = 1
        tmap[b, :n] = torch.arange(g, g + n)
    return ids, mask, tmap.reshape(-1)


def batches(windows: list[Window], batch_size: int, padding: bool) -> list[list[int]]:
    """The windows of a shard (by position) in batches of at most ``batch_size``.

    With ``padding`` consecutive windows are batched whatever their lengths (short ones padded);
    without, only windows of equal length share a batch, in order of first appearance, so no
    batch needs padding (see :func:`padding_works`).
    """
    if padding:
        return [list(range(b, min(b + batch_size, len(windows))))
                for b in range(0, len(windows), batch_size)]
    by_length: dict[int, list[int]] = {}
    for i, w in enumerate(windows):
        by_length.setdefault(w.ids.size, []).append(i)
    return [group[b:b + batch_size] for group in by_length.values()
            for b in range(0, len(group), batch_size)]


def padding_works(model: Any, pad_id: int) -> bool:
    """Whether the model's forward takes a right-padded batch with its attention mask.

    Some configurations fail inside transformers as soon as a mask holds a zero (DeepSeek-V3 with
    fewer key/value heads than attention heads: its attention cannot broadcast the mask), while
    unpadded batches run. A two-token trial batch tells, before any record is taken; capture then
    batches only windows of equal length, which read the same as one window at a time.
    """
    device = input_device(model)
    ids = torch.full((2, 2), pad_id, dtype=torch.long, device=device)
    mask = torch.tensor([[1, 1], [1, 0]], dtype=torch.long, device=device)
    try:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask, use_cache=False)
    except Exception:  # noqa: BLE001  (any failure: the real forward would meet it too)
        return False
    return True


def token_table(windows: list[Window]) -> np.ndarray:
    """int64 [n, 5] rows (id, doc, position in window, char start, char end) of ``windows``."""
    parts = []
    for w in windows:
        n = w.ids.size
        parts.append(np.column_stack([w.ids, np.full(n, w.doc), np.arange(n), w.offsets]))
    return np.concatenate(parts).astype(np.int64)


def _spare_cores(device: torch.device) -> bool:
    """Whether shard writing can overlap the forward without taking cores the forward uses.

    On a GPU the forward leaves the CPU mostly idle. On the CPU it depends on torch's thread
    count: when torch already uses every core, a background writer preempts its worker threads
    and each parallel op then waits for its slowest thread, which costs more than writing in
    the foreground on all cores (measured in ``benchmarks/capture.py``).
    """
    return device.type != "cpu" or torch.get_num_threads() < _cores()


def _cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def capture_shards(model: Any, adapter: Any, plans: list[LayerPlan], shards: Iterable[ShardPlan],
                   root, dtype: str, batch_size: int, pad_id: int,
                   on_shard: Callable[[ShardPlan], None] | None = None) -> None:
    """Run ``model`` over each shard's windows in batches and write the shards.

    ``shards`` may be a generator: each is planned, computed and let go in turn. Batches are
    padded unless the model cannot take padding (:func:`padding_works`).

    Where cores are spare (:func:`_spare_cores`), a finished shard is written (sorted, saved,
    hashed) by one background thread while the next shard is computed: file writes and hashing
    release the GIL, so writing overlaps the forward passes, and at most one shard waits, so
    memory stays at two shards. Otherwise each shard is written in the foreground with its
    layers spread over every core, and memory stays at one shard.
    """
    device = input_device(model)
    padding = batch_size == 1 or padding_works(model, pad_id)  # probed before hooks attach
    sink = StoreSink(plans, dtype)
    layers = [p.layer for p in plans]
    spaces = sorted({s for p in plans for s in p.spaces})
    last = max(layers)
    handle = adapter.attach(sink, layers, spaces)
    pending: tuple[Future, ShardPlan] | None = None

    def wait() -> None:
        nonlocal pending
        if pending is not None:
            future, done = pending
            pending = None
            future.result()  # re-raises a failed write here
            if on_shard is not None:
                on_shard(done)

    overlap = _spare_cores(device)
    workers = 1 if overlap else max(1, min(len(plans) + 1, _cores()))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="moelens-shard-writer") as pool:
        try:
            for shard in shards:
                writer = ShardWriter(root, shard.index, shard.start, shard.stop, plans, dtype)
                writer.add_tokens(np.arange(shard.start, shard.stop), token_table(shard.windows))
                starts = np.cumsum([shard.start] + [w.ids.size for w in shard.windows]).tolist()
                for batch in batches(shard.windows, batch_size, padding):
                    ids, mask, tmap = pad_batch([shard.windows[i] for i in batch],
                                                [starts[i] for i in batch], pad_id)
                    sink.begin(writer, tmap.to(device))
                    with torch.no_grad(), adapter.stop_after(last):
                        model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False)
                wait()
                if overlap:
                    pending = (pool.submit(writer.finish), shard)
                else:
                    writer.finish(pool)
                    if on_shard is not None:
                        on_shard(shard)
            wait()
        finally:
            handle.remove()
