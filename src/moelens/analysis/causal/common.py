"""What the causal commands share: loading the model, windows of the corpus, choosing cells,
writing tables, and the process group when run under ``torchrun``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moelens.analysis.causal.corpus import Windows, make_windows
from moelens.analysis.causal.sweep import Cell
from moelens.errors import ConfigError


def load(model: str, dtype: str = "float32", threads: int | None = None) -> tuple[Any, Any, Any]:
    """``(model, tokenizer, adapter)`` through the adapters' loader, transformers' bars silenced."""
    import torch

    from moelens.capture.adapters import get_adapter, load_model
    from moelens.hf_progress import quiet_hf_progress

    if threads:
        torch.set_num_threads(threads)
    with quiet_hf_progress():
        m, tok = load_model(model, dtype=dtype)
    return m, tok, get_adapter(m)


def windows_of(cfg: Any, tokenizer: Any) -> Windows:
    """The corpus of a causal config as padded batches (domain = record field or file name)."""
    from moelens.data.domains import read_labelled

    if not cfg.corpus:
        raise ConfigError("give the corpus with --corpus FILE ... (.txt or .jsonl)")
    docs = read_labelled(list(cfg.corpus), cfg.text_field)
    return make_windows(docs, tokenizer, cfg.ctx, cfg.batch_size, cfg.tokens)


def choose_cells(adapter: Any, layers: list[int], experts: list[str]) -> list[Cell]:
    """Cells from ``--layers`` (default every MoE layer) and ``--experts`` ('all' or ids)."""
    moe = adapter.moe_layers()
    if not moe:
        raise ConfigError("this model has no MoE layer: there are no experts to ablate")
    chosen = list(layers) or moe
    bad = [l for l in chosen if l not in moe]
    if bad:
        raise ConfigError(f"layer(s) {bad} are not MoE layers of this model (MoE layers: {moe})")
    cells = []
    for layer in chosen:
        n = adapter.num_experts(layer)
        if [e.lower() for e in experts] == ["all"]:
            ids = list(range(n))
        else:
            try:
                ids = sorted({int(e) for e in experts})
            except ValueError:
                raise ConfigError(f"--experts takes 'all' or expert ids, got {' '.join(experts)}") from None
            wrong = [e for e in ids if not 0 <= e < n]
            if wrong:
                raise ConfigError(f"unknown expert id(s) {wrong} at layer {layer}: it has experts 0..{n - 1}")
        cells += [Cell(layer, e) for e in ids]
    return cells


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    import pandas as pd

    from moelens.rundir import atomic_path

    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)


@dataclass
class Ranks:
    """This process's place among the ``torchrun`` processes (1 process without torchrun)."""

    rank: int = 0
    world: int = 1

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()


@contextmanager
def process_group() -> Iterator[Ranks]:
    """A gloo process group under ``torchrun`` (``WORLD_SIZE`` > 1), else a single rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        yield Ranks()
        return
    import torch.distributed as dist

    dist.init_process_group("gloo")
    try:
        yield Ranks(dist.get_rank(), dist.get_world_size())
    finally:
        dist.destroy_process_group()


def settings(cfg: Any, ignore: tuple[str, ...] = ("out", "overwrite", "quiet", "threads")) -> dict[str, Any]:
    """The config values that decide a result (paths as strings)."""
    from moelens.config import to_dict

    return {k: v for k, v in to_dict(cfg).items() if k not in ignore}


def settings_key(cfg: Any) -> str:
    """A short hash of :func:`settings`: parts of an unfinished run are kept only under it."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(settings(cfg), sort_keys=True, default=str).encode()).hexdigest()[:12]


def check_done(out: Path, cfg: Any, what: str) -> None:
    """A finished run made with other settings is an error, never a silent skip."""
    import json

    try:
        saved = json.loads((Path(out) / "config.json").read_text()).get("config", {})
    except (OSError, ValueError, AttributeError):
        return
    now = json.loads(json.dumps(settings(cfg), default=str))
    differ = sorted(k for k in now if k in saved and now[k] != saved[k])
    if differ:
        raise ConfigError(f"{out} holds a finished {what} run with other settings ({', '.join(differ)}); "
                          "pass --overwrite to redo it or choose another --out")


def progress(total: int, desc: str, quiet: bool):
    """A tqdm bar on stderr (silent with ``--quiet``)."""
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=quiet, file=sys.stderr)
