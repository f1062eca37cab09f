"""A model loaded where the placement flags say: the flags every model-running command shares.

``moelens capture``, ``moelens causal ablate|knowledge|trigger`` and ``moelens specialize`` all
run (or read) a model, and all of them take the same five flags, declared once here
(:class:`PlacementFlags`, which their configs inherit) and checked by
:func:`moelens.capture.placement.resolve`: one device (``--device``) or a model split over GPUs,
CPU and disk by accelerate (``--device_map``, ``--max_memory``, ``--offload_folder``), in
``--model_dtype``. :func:`load_placed` loads a model that way; :func:`input_device` says where its
input ids go; :func:`weights_in_place` lets an analysis read weights directly (an unembedding, a
norm, an expert's projections) on a model whose weights accelerate keeps offloaded between
forwards. The analyses that run models import this module and the adapters, nothing else of
capture.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from moelens.capture import placement as placement_mod
from moelens.capture.placement import describe_map, input_device

__all__ = ["PLACEMENT_ONLY", "PlacementFlags", "describe_map", "input_device", "load_placed", "offload_dir",
           "weights_in_place"]


@dataclass
class PlacementFlags:
    """Where the model runs (a base of the configs of every command that runs a model)."""

    HELP_GROUP: ClassVar[str] = "where the model runs"
    """the heading of these flags in a command's --help, after the command's own flags"""
    device: str | None = None
    """torch device of a model that fits one device: cpu, cuda or cuda:N (default: the local
    rank's GPU if there is one, else cpu)"""
    model_dtype: Literal["default", "float32", "bfloat16", "float16", "auto"] = "default"
    """dtype the model runs in: default = bfloat16 on a GPU, float32 on the CPU; auto = the
    checkpoint's own (float32 is exact; bfloat16 halves the memory of a large model)"""
    device_map: str | None = None
    """split the model over devices with accelerate: auto, balanced, balanced_low_0, sequential,
    or a JSON map of module names to devices ({"model.layers.0": 0, "lm_head": "cpu"}) or a file
    holding one; weights that fit nowhere go to disk (--offload_folder)"""
    max_memory: list[str] = field(default_factory=list)
    """per-device budgets for --device_map, e.g. 0=70GiB 1=70GiB cpu=200GiB (implies --device_map
    auto); each must hold at least the largest decoder layer"""
    offload_folder: Path | None = None
    """where --device_map keeps weights offloaded to disk (default: a temporary directory)"""

    def placement(self) -> placement_mod.Placement:
        """The checked placement of these flags (a ConfigError names the first bad flag)."""
        return placement_mod.resolve(self.device, self.model_dtype, self.device_map, self.max_memory,
                                     self.offload_folder)


PLACEMENT_ONLY = ("device", "device_map", "max_memory", "offload_folder")
"""Flags that move a computation without changing its result (a split model computes what the
unsplit one does): a finished run is not "made with other settings" because they differ."""


@contextlib.contextmanager
def offload_dir(placement: placement_mod.Placement) -> Iterator[placement_mod.Placement]:
    """The placement, with a temporary ``offload_folder`` (removed afterwards) when a device map
    may offload weights to disk and the user named no folder."""
    if placement.device_map is None or placement.offload_folder is not None:
        yield placement
        return
    with tempfile.TemporaryDirectory(prefix="moelens-offload-") as tmp:
        yield dataclasses.replace(placement, offload_folder=Path(tmp))


def load_placed(name: str, placement: placement_mod.Placement | None = None,
                dtype: str = "float32") -> tuple[Any, Any]:
    """``(model, tokenizer)`` through the adapters' loader, placed (one device, or split by a
    device map) in the placement's dtype, with transformers' progress bars and accelerate's
    warning about offloaded weights silenced: a command has its own bar, and a user error found
    after loading must still be the only line on stderr. Without a placement: ``dtype`` on the
    CPU."""
    from moelens.capture.adapters import load_model
    from moelens.hf_progress import quiet_hf_progress

    with quiet_hf_progress(), _quiet_offload_warning():
        model, tokenizer = load_model(name, dtype=placement.dtype if placement is not None else dtype,
                                      placement=placement)
    if placement is not None and placement.device_map is None:
        model = model.to(placement.device)
    return model, tokenizer


@contextlib.contextmanager
def _quiet_offload_warning() -> Iterator[None]:
    """accelerate warns on stderr that offloaded weights sit on the meta device: expected with
    --device_map (the commands say where the modules went instead)."""
    log = logging.getLogger("accelerate.big_modeling")
    before = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(before)


@contextlib.contextmanager
def weights_in_place(*modules: Any) -> Iterator[None]:
    """Inside the block, the weights of ``modules`` (and their submodules) that accelerate keeps
    offloaded (on the meta device between forwards) are loaded onto their execution device, as
    their forward would load them; they are offloaded again after. Modules of a model that was not
    dispatched are left alone."""
    from accelerate.utils import align_module_device, has_offloaded_params

    with contextlib.ExitStack() as stack:
        seen: set[int] = set()
        for root in modules:
            if root is None:
                continue
            for module in root.modules():
                if id(module) not in seen and has_offloaded_params(module):
                    seen.add(id(module))
                    stack.enter_context(align_module_device(module))
        yield
