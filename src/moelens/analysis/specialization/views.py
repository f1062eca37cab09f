"""What each expert sees and what it writes, as counts over clusters of the vocabulary.

- **input view**: the token at every (token, slot) routed to the expert;
- **output view**: the top ``top`` logit-lens tokens of each routed row's output — the expert's
  output (recomputed from its stored neurons by the adapter) put through the model's final norm
  (``lens="final_norm"``, the corrected protocol) or not (``lens="raw"``, as the published
  scripts did) and the unembedding.

The input view reads the layer's routing table; the output view reads one expert's rows at a
time (``ActivationStore.expert``) and unembeds them in chunks, so memory holds one expert.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def input_counts(tokens: np.ndarray, ids: np.ndarray, labels: dict[int, np.ndarray],
                 num_experts: int) -> dict[int, np.ndarray]:
    """``{K: counts [E, K]}``: routed input tokens per expert, by cluster."""
    experts = ids.reshape(-1)
    tok = np.repeat(tokens, ids.shape[1])
    out = {}
    for k, lab in labels.items():
        counts = np.zeros((num_experts, k), dtype=np.int64)
        np.add.at(counts, (experts, lab[tok]), 1)
        out[k] = counts
    return out


@torch.no_grad()
def logit_lens_top(adapter: Any, layer: int, expert: int, hidden: np.ndarray, top: int, lens: str,
                   chunk: int = 4096) -> np.ndarray:
    """[r, top] token ids: the top logit-lens tokens of each row's expert output."""
    w_u = adapter.unembedding().detach()
    norm = adapter.final_norm()
    out = []
    for s in range(0, hidden.shape[0], chunk):
        h = torch.from_numpy(np.ascontiguousarray(hidden[s:s + chunk]))
        o = adapter.expert_output(layer, expert, h)
        if lens == "final_norm":
            o = norm(o.to(w_u.dtype))
        logits = o.to(w_u.dtype) @ w_u.t()
        out.append(logits.topk(top, dim=-1).indices.numpy())
    return np.concatenate(out) if out else np.zeros((0, top), dtype=np.int64)


def output_counts(store: Any, adapter: Any, layer: int, labels: dict[int, np.ndarray], top: int,
                  lens: str) -> dict[int, np.ndarray]:
    """``{K: counts [E, K]}``: logit-lens output tokens per expert, by cluster (one expert at a time)."""
    n_exp = store.num_experts(layer)
    out = {k: np.zeros((n_exp, k), dtype=np.int64) for k in labels}
    for e in range(n_exp):
        _, acts = store.expert(layer, e, "routed")
        if not len(acts):
            continue
        toks = logit_lens_top(adapter, layer, e, acts, top, lens).reshape(-1)
        for k, lab in labels.items():
            out[k][e] = np.bincount(lab[toks], minlength=k)
    return out
