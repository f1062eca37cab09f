"""Where a model runs: one device, or split over GPUs, CPU and disk by accelerate's big-model loading.

A model that fits one device is loaded there (``--device``, default the local rank's GPU, else the
CPU). A model that does not is loaded with a device map (``--device_map auto|balanced|
balanced_low_0|sequential``, or an explicit JSON map of module names to devices) and, optionally,
per-device budgets (``--max_memory 0=70GiB 1=70GiB cpu=200GiB``): transformers hands both to
accelerate, which places whole decoder layers and installs hooks that move activations between
devices and stream offloaded weights in from CPU memory or disk (``--offload_folder``) when their
layer runs. Capture's hooks see the same tensors either way, so the store is the same as an
unsplit run of the same model on the same kind of device.

Every mistake a user can make here is found before the weights are read: a device that does not
exist, a budget that cannot hold even the largest decoder layer (accelerate would then run each
layer from disk on a device with no room for it), a map naming an unknown device.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from moelens.errors import ConfigError

STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
"""accelerate's placement strategies (``--device_map``)."""

MODEL_DTYPES = ("default", "float32", "bfloat16", "float16", "auto")
"""``--model_dtype`` choices: ``default`` is bfloat16 on a GPU and float32 on the CPU; ``auto`` is
the checkpoint's own dtype."""

_TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Placement:
    """A resolved placement: how to load the model and where its inputs go."""

    device: torch.device
    """the compute device of a single-device load; with a device map, the device of the inputs
    (the first GPU the map uses, else the CPU)"""
    dtype: str
    """the dtype the model runs in: float32, bfloat16, float16 or auto (the checkpoint's)"""
    device_map: str | dict[str, Any] | None = None
    """accelerate's strategy name or an explicit module -> device map; None for one device"""
    max_memory: dict[int | str, int] | None = None
    """per-device budgets in bytes (GPU index, "cpu"), as accelerate takes them"""
    offload_folder: Path | None = None
    """where weights offloaded to disk are kept while the model is loaded"""

    @property
    def compute(self) -> str:
        """"cuda" if any part of the model runs on a GPU, else "cpu" (stored values depend on it)."""
        return self.device.type

    def load_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``from_pretrained`` that place the model (empty for one device)."""
        if self.device_map is None:
            return {}
        kw: dict[str, Any] = {"device_map": self.device_map}
        if self.max_memory is not None:
            kw["max_memory"] = dict(self.max_memory)
        if self.offload_folder is not None:
            kw["offload_folder"] = str(self.offload_folder)
        return kw


def _gpu_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _gpu_index(name: str, where: str) -> int:
    """The GPU index of ``N`` or ``cuda:N`` (``cuda`` is GPU 0); a ConfigError if it is missing."""
    text = name.strip()
    index = 0 if text == "cuda" else int(text.split(":", 1)[1]) if text.startswith("cuda:") else int(text)
    have = _gpu_count()
    if index < 0 or index >= have:
        seen = f"only {have} GPU(s) are visible" if have else "no CUDA GPU is visible"
        raise ConfigError(f"{where} names GPU {index} but {seen}; use cpu or an existing GPU")
    return index


def check_device(requested: str | None, local_rank: int = 0) -> torch.device:
    """The device of ``--device`` (default: the local rank's GPU if there is one, else the CPU)."""
    if requested is None:
        return torch.device(f"cuda:{local_rank}") if _gpu_count() > local_rank else torch.device("cpu")
    try:
        dev = torch.device(requested)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {requested!r} is not a torch device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if _gpu_count() == 0:
            raise ConfigError(f"--device {requested}: no CUDA GPU is visible (torch.cuda.is_available() "
                              "is False); use --device cpu or run on a machine with a GPU")
        return torch.device(f"cuda:{_gpu_index(requested, '--device')}")
    if dev.type not in ("cpu", "mps"):
        raise ConfigError(f"--device {requested!r}: moelens runs on cpu or cuda devices")
    return dev


def parse_size(text: str, where: str) -> int:
    """Bytes of a size such as ``70GiB``, ``500MB``, ``4096`` (accelerate's notation)."""
    from accelerate.utils import convert_file_size_to_int

    try:
        value = convert_file_size_to_int(text.strip())
    except (ValueError, TypeError, AttributeError):
        value = -1
    if not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where}: {text!r} is not a size; write e.g. 70GiB, 500MB or a number of bytes")
    return value


def parse_max_memory(items: list[str]) -> dict[int | str, int]:
    """``["0=70GiB", "cpu=200GiB"]`` -> ``{0: 75161927680, "cpu": ...}``; every device must exist."""
    budgets: dict[int | str, int] = {}
    for item in items:
        key, sep, size = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--max_memory {item!r}: write DEVICE=SIZE, e.g. 0=70GiB cpu=200GiB")
        where = f"--max_memory {item}"
        if key == "cpu":
            budgets["cpu"] = parse_size(size, where)
        elif key == "disk":
            raise ConfigError(f"{where}: disk needs no budget; weights that fit nowhere else go to "
                              "--offload_folder")
        elif key.isdigit() or key.startswith("cuda"):
            budgets[_gpu_index(key, where)] = parse_size(size, where)
        else:
            raise ConfigError(f"{where}: unknown device {key!r}; use a GPU index (0, 1, ...), cuda:N or cpu")
    return budgets


def _map_device(value: Any, module: str) -> int | str:
    """One device of an explicit map, checked: a GPU index, cuda:N, cpu or disk."""
    where = f"--device_map entry {module!r}"
    if isinstance(value, bool):
        raise ConfigError(f"{where}: {value!r} is not a device; use a GPU index, cuda:N, cpu or disk")
    if isinstance(value, int) or (isinstance(value, str) and (value.isdigit() or value.startswith("cuda"))):
        return _gpu_index(str(value), where)
    if value in ("cpu", "disk"):
        return value
    raise ConfigError(f"{where}: unknown device {value!r}; use a GPU index, cuda:N, cpu or disk")


def parse_device_map(text: str) -> str | dict[str, Any]:
    """A strategy name, a JSON object (module -> device) or the path of a JSON file holding one."""
    if text in STRATEGIES:
        return text
    source = text
    if not text.lstrip().startswith("{"):
        path = Path(text)
        if not path.is_file():
            raise ConfigError(f"--device_map {text!r} is neither a strategy ({', '.join(STRATEGIES)}), "
                              "a JSON object nor an existing JSON file")
        source = path.read_text(encoding="utf-8")
    try:
        mapping = json.loads(source)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--device_map is not valid JSON ({exc.msg} at character {exc.pos}); "
                          'write e.g. {"model.layers.0": 0, "lm_head": "cpu"}') from None
    if not isinstance(mapping, dict) or not mapping:
        raise ConfigError("--device_map must map module names to devices, e.g. "
                          '{"model.embed_tokens": 0, "model.layers": "cpu", "lm_head": 0}')
    return {str(k): _map_device(v, str(k)) for k, v in mapping.items()}


def _uses_gpu(device_map: str | dict[str, Any], max_memory: dict[int | str, int] | None) -> list[int]:
    """The GPU indices a map (or a strategy under these budgets) can place modules on."""
    if isinstance(device_map, dict):
        return sorted({v for v in device_map.values() if isinstance(v, int)})
    if max_memory is not None:
        return sorted(k for k in max_memory if isinstance(k, int))
    return list(range(_gpu_count()))


def resolve(device: str | None, model_dtype: str, device_map: str | None, max_memory: list[str],
            offload_folder: Path | None, local_rank: int | None = None) -> Placement:
    """Check the placement flags of a command and resolve them (see the module docstring)."""
    if model_dtype not in MODEL_DTYPES:
        raise ConfigError(f"--model_dtype {model_dtype!r}: choose one of {', '.join(MODEL_DTYPES)}")
    rank = int(os.environ.get("LOCAL_RANK", "0")) if local_rank is None else local_rank
    budgets = parse_max_memory(max_memory) if max_memory else None
    if device_map is None and budgets is None:
        if offload_folder is not None:
            raise ConfigError("--offload_folder is used only with --device_map or --max_memory")
        dev = check_device(device, rank)
        return Placement(dev, _dtype_for(model_dtype, dev), None)
    if device is not None:
        raise ConfigError("give --device (one device) or --device_map/--max_memory (a model split "
                          "over devices), not both")
    mapping = parse_device_map(device_map) if device_map is not None else "auto"
    gpus = _uses_gpu(mapping, budgets)
    dev = torch.device(f"cuda:{gpus[0]}") if gpus else torch.device("cpu")
    return Placement(dev, _dtype_for(model_dtype, dev), mapping, budgets, offload_folder)


def _dtype_for(choice: str, dev: torch.device) -> str:
    if choice == "default":
        return "bfloat16" if dev.type == "cuda" else "float32"
    return choice


def check_fits(placement: Placement, config: Any) -> None:
    """Refuse budgets that cannot hold the largest decoder layer on any compute device.

    accelerate places whole decoder layers (the model's ``_no_split_modules``) and, when the
    budgets are full, offloads the rest; but each layer still has to fit on the device that runs
    it. The sizes come from an empty (meta-device) copy of the model, so nothing is read but the
    config.
    """
    if placement.max_memory is None:
        return
    gpu_budgets = [v for k, v in placement.max_memory.items() if isinstance(k, int)]
    budget_name = "the largest GPU budget" if gpu_budgets else "the cpu budget"
    budget = max(gpu_budgets) if gpu_budgets else placement.max_memory.get("cpu")
    if budget is None:
        return  # no cpu budget given: accelerate uses the free memory
    need, name = largest_layer_bytes(config, placement.dtype)
    if need > budget:
        raise ConfigError(f"--max_memory is too small: {name} needs {_human(need)} in "
                          f"{placement.dtype} but {budget_name} is {_human(budget)}; give at least "
                          f"{_human(need)} to the device that runs the layers")


def largest_layer_bytes(config: Any, dtype: str) -> tuple[int, str]:
    """Bytes of the largest module accelerate will not split (a decoder layer), and its name."""
    model = empty_model(config)
    from accelerate.utils import compute_module_sizes

    torch_dtype = _TORCH_DTYPES.get(dtype)
    sizes = compute_module_sizes(model, dtype=torch_dtype) if torch_dtype else compute_module_sizes(model)
    classes = set(getattr(model, "_no_split_modules", None) or [])
    best, name = 0, "the model"
    for mod_name, module in model.named_modules():
        if type(module).__name__ in classes and sizes.get(mod_name, 0) > best:
            best, name = sizes[mod_name], f"decoder layer {mod_name}"
    if best == 0:  # no declared layer class: the largest leaf module with parameters
        for mod_name, module in model.named_modules():
            if not list(module.children()) and sizes.get(mod_name, 0) > best:
                best, name = sizes[mod_name], f"module {mod_name}"
    return best, name


def empty_model(config: Any) -> torch.nn.Module:
    """The model of a transformers ``config`` with every weight on the meta device (no memory)."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    try:
        import moelens.models  # noqa: F401  (registers model_type "moelens")
    except ImportError:
        pass
    with init_empty_weights():
        return AutoModelForCausalLM.from_config(config)


def input_device(model: torch.nn.Module) -> torch.device:
    """The device a model's input ids go to: where its embedding runs (its accelerate hook's
    execution device when the model was dispatched), else the device of its first parameter."""
    emb = None
    try:
        emb = model.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        pass
    hook = getattr(emb, "_hf_hook", None) if emb is not None else None
    where = getattr(hook, "execution_device", None)
    if where is not None:
        return torch.device(f"cuda:{where}" if isinstance(where, int) else where)
    params = emb.parameters() if emb is not None else model.parameters()
    dev = next(params, None)
    if dev is None or dev.device.type == "meta":
        dev = next((p for p in model.parameters() if p.device.type != "meta"), None)
    return dev.device if dev is not None else torch.device("cpu")


def describe_map(device_map: dict[str, Any]) -> str:
    """``{"model.embed_tokens": "cpu", "model.layers.0": "disk", ...}`` -> "1 module on cpu, 4 on disk"."""
    counts: dict[str, int] = {}
    for where in device_map.values():
        name = f"cuda:{where}" if isinstance(where, int) else str(where)
        counts[name] = counts.get(name, 0) + 1
    parts = [f"{n} on {name}" for name, n in counts.items()]
    return f"{len(device_map)} module(s): " + ", ".join(parts)


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
