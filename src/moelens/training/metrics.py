"""``metrics.jsonl``: one JSON object per logged step, and MoE layer statistics.

Each line has ``iter``, ``tokens``, ``loss`` (training loss incl. auxiliary loss, averaged over
micro-steps and processes), ``ce``, ``aux_loss``, ``lr``, ``grad_norm``, ``tokens_per_s``, and
``val_loss`` when validation ran at that step; ``moe`` maps each MoE layer index to its
``last_stats`` (expert ``load``, ``router_entropy``, ``l0`` = mean active hidden units per
token) from the last training forward on rank 0.

Lines are appended as the run goes. On resume, lines after the checkpoint's step are dropped
first, so the file of a resumed run reads like the file of an uninterrupted one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from torch import nn

from moelens.rundir import atomic_write_text

METRICS_FILE = "metrics.jsonl"


def moe_layers(model: nn.Module) -> dict[int, nn.Module]:
    """The FFN modules with router statistics, by layer (``model.transformer.h[i].mlp``)."""
    blocks = getattr(getattr(model, "transformer", None), "h", None) or []
    return {i: b.mlp for i, b in enumerate(blocks)
            if hasattr(getattr(b, "mlp", None), "last_stats")}


def _plain(v: Any) -> Any:
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON has no NaN/inf; a diverged loss shows as null
    return v


def moe_stats(layers: dict[int, nn.Module]) -> dict[str, dict[str, Any]]:
    """JSON-ready ``last_stats`` of each MoE layer (layers that have not run yet are skipped)."""
    out = {}
    for i, mlp in layers.items():
        stats = getattr(mlp, "last_stats", None)
        if stats:
            out[str(i)] = {k: _plain(v) for k, v in stats.items()}
    return out


class MetricsLog:
    """Appends metric lines to ``<out>/metrics.jsonl``."""

    def __init__(self, out: Path):
        self.path = Path(out) / METRICS_FILE

    def truncate_after(self, step: int) -> None:
        """Keep only lines up to ``step`` (atomically), e.g. before resuming at ``step``."""
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line)["iter"] <= step:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                break  # a line cut by a kill: it and anything after it are dropped
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({k: _plain(v) for k, v in record.items()}) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
