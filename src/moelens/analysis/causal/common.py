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
from moelens.capture.placed import PLACEMENT_ONLY
from moelens.errors import ConfigError


@contextmanager
def loaded(cfg: Any, placement: Any, say: bool = True) -> Iterator[tuple[Any, Any, Any]]:
    """``(model, tokenizer, adapter)`` of ``cfg.model`` placed as ``placement`` says (one device, or
    split over devices by accelerate; a temporary offload folder lasts as long as the block),
    with transformers' bars silenced; ``say`` prints where a device map put the modules."""
    import torch

    from moelens.capture.adapters import get_adapter
    from moelens.capture.placed import describe_map, load_placed, offload_dir

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    with offload_dir(placement) as placement:
        model, tok = load_placed(cfg.model, placement)
        if say and not getattr(cfg, "quiet", False) and getattr(model, "hf_device_map", None):
            print(f"model placed by --device_map: {describe_map(model.hf_device_map)}", flush=True)
        yield model, tok, get_adapter(model)


def windows_of(cfg: Any, tokenizer: Any, concepts: list[Any] | None = None) -> Windows:
    """The corpus of a causal config as padded batches (domain = record field or file name),
    labelled with ``concepts`` (see :func:`concepts_of`) when given."""
    from moelens.data.domains import read_labelled

    if not cfg.corpus:
        raise ConfigError("give the corpus with --corpus FILE ... (.txt or .jsonl)")
    docs = read_labelled(list(cfg.corpus), cfg.text_field)
    return make_windows(docs, tokenizer, cfg.ctx, cfg.batch_size, cfg.tokens, concepts or ())


def concepts_of(selectors: list[str], variant: str = "fixed") -> list[Any]:
    """Registry concepts named by ``selectors`` ('all', group names, concept names, user specs),
    in order without repeats; an unknown name is an error naming the closest registered ones.
    A concept that cannot label text here (a missing optional dependency) is an error when named,
    and left out with a note on stderr when it came with a group or 'all'."""
    import sys
    from difflib import get_close_matches

    from moelens.data import concepts as reg
    from moelens.data.concepts.user import is_user_spec

    found: dict[str, Any] = {}
    for sel in selectors:
        if sel == "all" or sel in reg.groups():
            chosen = reg.list_concepts(None if sel == "all" else sel, variant)
            left = [c for c in chosen if c.unavailable_reason() is not None]
            if left:
                print(f"causal: leaving out {len(left)} concept(s) of {sel!r} that cannot label text here "
                      f"({left[0].name}: {left[0].unavailable_reason()})", file=sys.stderr)
            chosen = [c for c in chosen if c.unavailable_reason() is None]
        else:
            try:
                chosen = [reg.get_concept(sel, variant)]
            except ConfigError:
                if is_user_spec(sel):  # a user spec's own error says what is wrong with it
                    raise
                names = [c.name for c in reg.list_concepts(variant=variant)] + reg.groups()
                close = get_close_matches(sel.rpartition(".")[2], names, n=3, cutoff=0.6)
                hint = f"did you mean {', '.join(close)}? " if close else ""
                raise ConfigError(
                    f"unknown concept {sel!r}; {hint}concepts are named by group ({', '.join(reg.groups())}), "
                    "list a group's with `python -c \"from moelens.data.concepts import list_concepts; "
                    "print([c.name for c in list_concepts('GROUP')])\"`, or give regex:/tokens: specs") from None
            reason = chosen[0].unavailable_reason()
            if reason is not None:
                raise ConfigError(f"concept {sel!r} cannot label text here: {reason}")
        for c in chosen:
            found.setdefault(c.name, c)
    return list(found.values())


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


IGNORED = ("out", "overwrite", "quiet", "threads", *PLACEMENT_ONLY)
"""Config values that do not decide a result (where the model runs among them: a model split
over devices computes what the unsplit one does)."""


def settings(cfg: Any, ignore: tuple[str, ...] = IGNORED) -> dict[str, Any]:
    """The config values that decide a result (paths as strings)."""
    from moelens.config import to_dict

    return {k: v for k, v in to_dict(cfg).items() if k not in ignore}


def settings_key(cfg: Any, placement: Any = None) -> str:
    """A short hash of :func:`settings` and of the dtype and kind of device (cpu / cuda) the model
    runs in, which change its numbers: parts of an unfinished run are kept only under it."""
    import hashlib
    import json

    values = settings(cfg)
    if placement is not None:
        values = {**values, "model_dtype": placement.dtype, "compute": placement.compute}
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:12]


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
