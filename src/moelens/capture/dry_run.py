"""``moelens capture --dry_run``: the store's size, the forward cost and the time, before the run.

Nothing is written to ``--out``. The model is loaded as the real run would load it (so a device
map and its budgets are tried too), the corpus is tokenized up to ``--tokens`` (or counted to its
end), and a trial shard of two batches is captured into a temporary directory: that gives the
capture's own tokens per second on this machine (forward, hooks, writing), the share of nonzero
expert activations (which decides the sparse layout of ReLU experts) and the characters of text
per token (documents.json). The store's bytes then follow from the format (:mod:`moelens.store.sizing`).
"""

from __future__ import annotations

import itertools
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moelens.capture.capture import capture_shards
from moelens.capture.windows import ShardPlan, Window
from moelens.store import format as fmt
from moelens.store.sizing import SizeEstimate, estimate, human


@dataclass
class Trial:
    """What a short real capture measured."""

    tokens: int
    seconds: float
    density: dict[int, float]
    doc_bytes_per_token: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else float("inf")


def forward_flops_per_token(adapter: Any, last_layer: int, ctx: int) -> float:
    """FLOPs of one token's forward through ``last_layer`` (capture stops there).

    2 x the parameters a token meets (each decoder layer's own weights, its experts' weights x
    top_k / num_experts) plus the attention scores, 2 x 2 x width x ctx / 2 per layer for an
    average causal context of ctx / 2 (the usual 2N + 2 n_layer n_ctx d_attn account).
    """
    moe = set(adapter.moe_layers())
    total = 0.0
    for i, block in enumerate(adapter.decoder_layers()[: last_layer + 1]):
        params = 0.0
        share = adapter.top_k(i) / adapter.num_experts(i) if i in moe else 1.0
        for name, p in block.named_parameters():
            params += p.numel() * (share if _per_expert(name) else 1.0)
        total += 2.0 * params + 2.0 * adapter.hidden_size * ctx
    return total


def _per_expert(name: str) -> bool:
    """Whether a parameter holds one slice per expert (HF fused ``experts.*``, moelens
    ``w_enc``/``w_dec``/``b_enc``), so a token meets only its top-k slices."""
    leaf = name.rsplit(".", 1)[-1]
    return ".experts." in f".{name}" or leaf in ("w_enc", "w_dec", "b_enc")


def run_trial(model: Any, adapter: Any, plans: list[Any], windows: list[Window], dtype: str,
              batch_size: int, pad_id: int) -> Trial:
    """Capture ``windows`` into a temporary store: the first batch as a warm-up shard (first
    calls are slow), the rest (up to two batches) timed as a second shard."""
    warm = windows[: max(1, min(batch_size, len(windows) - 1))] if len(windows) > 1 else []
    timed = windows[len(warm):]
    n_warm = sum(w.ids.size for w in warm)
    n = sum(w.ids.size for w in timed)
    shards = [ShardPlan(0, 0, n_warm, list(warm))] if warm else []
    shards.append(ShardPlan(len(shards), n_warm, n_warm + n, list(timed)))
    with tempfile.TemporaryDirectory(prefix="moelens-dry-run-") as tmp:
        root = Path(tmp)
        if warm:
            capture_shards(model, adapter, plans, shards[:1], root, dtype, batch_size, pad_id)
        start = time.perf_counter()
        capture_shards(model, adapter, plans, shards[-1:], root, dtype, batch_size, pad_id)
        seconds = time.perf_counter() - start
        last = shards[-1].index
        density = {}
        for p in plans:
            if "expert" not in p.spaces:
                continue
            path = root / fmt.array_rel(p.layer, "expert", last, "values")
            if path.exists():
                values = np.load(path)
                density[p.layer] = float(np.count_nonzero(values)) / max(values.size, 1)
            else:  # written sparse: nonzeros over all entries
                nnz = np.load(root / fmt.array_rel(p.layer, "expert", last, "coo_value")).size
                rows = np.load(root / fmt.array_rel(p.layer, "expert", last, "token")).size
                density[p.layer] = nnz / max(rows * p.widths["expert"], 1)
    # characters the windows span (documents.json holds the texts): about a byte each
    text = sum(int(w.offsets[-1, 1] - w.offsets[0, 0]) for w in timed if w.ids.size)
    return Trial(n, seconds, density, text / max(n, 1))


def report(size: SizeEstimate, trial: Trial, flops: float, n_tokens: int, counted: str,
           placement: Any, shard_tokens: int, dtype: str, out=sys.stdout) -> None:
    """Print the plan: bytes per layer and space, forward cost, expected time."""
    print(f"capture --dry_run: {n_tokens:,} tokens ({counted}) in {size.n_shards} shard(s) of "
          f"{shard_tokens:,} tokens; values stored as {dtype}; model in {placement.dtype} on "
          f"{placement.device}{' with a device map' if placement.device_map is not None else ''}", file=out)
    for line in size.lines():
        print("  " + line, file=out)
    print(f"store_bytes: {size.total}", file=out)
    print(f"forward: {flops / 1e9:.3g} GFLOP per token through the last recorded layer "
          f"({flops * n_tokens / 1e12:.3g} TFLOP in all)", file=out)
    seconds = n_tokens / trial.tokens_per_s
    print(f"measured: {trial.tokens_per_s:,.0f} tokens/s capturing a trial of {trial.tokens:,} tokens "
          f"-> about {_duration(seconds)} for {n_tokens:,} tokens ({human(size.total)} written)", file=out)
    print("capture --dry_run: nothing was written; drop --dry_run to capture", file=out)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def dry_run(model: Any, adapter: Any, plans: list[Any], windows: Any, cfg: Any, placement: Any,
            shard_tokens: int, pad_id: int, quiet: bool) -> int:
    """Count the tokens, run the trial, print the plan; returns the number of tokens planned."""
    head = list(itertools.islice(windows, 3 * max(1, cfg.batch_size)))
    bar = None
    if not quiet and cfg.tokens is None:
        from tqdm import tqdm

        bar = tqdm(unit="tok", desc="counting tokens", file=sys.stderr)
    sizes, current = [], 0  # shards close at window boundaries, as plan_shards closes them
    for w in itertools.chain(head, windows):  # the corpus, counted up to --tokens
        current += w.ids.size
        if current >= shard_tokens:
            sizes.append(current)
            current = 0
        if bar is not None:
            bar.update(w.ids.size)
    if current:
        sizes.append(current)
    if bar is not None:
        bar.close()
    n_tokens = sum(sizes)
    counted = "from --tokens" if cfg.tokens is not None and n_tokens >= cfg.tokens else "the whole corpus"
    trial = run_trial(model, adapter, plans, head, cfg.dtype, cfg.batch_size, pad_id)
    size = estimate([p.to_json() for p in plans], sizes, cfg.dtype, trial.density,
                    trial.doc_bytes_per_token)
    with torch.no_grad():
        flops = forward_flops_per_token(adapter, max(p.layer for p in plans), cfg.ctx)
    report(size, trial, flops, n_tokens, counted, placement, shard_tokens, cfg.dtype)
    return n_tokens
