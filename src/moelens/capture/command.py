"""``moelens capture``: record a model's units on a corpus into an activation store.

Runs in one process or under ``torchrun`` (gloo): every rank tokenizes the corpus the same way,
shards are dealt out by index (shard i goes to rank i mod world size), rank 0 claims the output
directory first and writes the manifest after a barrier. Because shard boundaries and batches
depend only on the token stream, the store is the same whatever the number of processes, and a
killed capture resumes from its complete shards when the same command is run again.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from moelens.capture import corpus as corpus_mod
from moelens.store import format as fmt
from moelens.capture import store_job
from moelens.capture.capture import capture_shards, plan_layers
from moelens.config import to_dict
from moelens.errors import ConfigError, MoelensError, StoreError
from moelens.hf_progress import quiet_hf_progress
from moelens.rundir import sha256_file


@dataclass
class CaptureConfig:
    model: str = ""
    """hub id or local directory of the model to capture"""
    out: Path | None = None
    """directory of the activation store to write (required)"""
    corpus: list[Path] = field(default_factory=list)
    """local corpus files: .txt (one document), .jsonl/.parquet (one per record), .pgn (one per
    game) or ';1.e4 ...' transcript files (one game per line)"""
    dataset: str | None = None
    """a hub dataset to read instead of --corpus (needs the 'datasets' package and the network)"""
    split: str = "train"
    """split of --dataset"""
    text_field: str = "text"
    """field holding the text in .jsonl/.parquet files and hub datasets"""
    layers: list[int] = field(default_factory=list)
    """layers to record (default: every MoE and dense layer)"""
    spaces: list[str] = field(default_factory=list)
    """unit spaces to record: expert, expert_gate, expert_out, shared, ffn, resid (default: all
    that exist at each chosen layer)"""
    tokens: int | None = None
    """number of tokens to record (default: the whole corpus)"""
    ctx: int = 256
    """context length: documents are cut into windows of at most this many tokens"""
    batch_size: int = 8
    """windows per forward pass"""
    dtype: Literal["fp16", "bf16", "fp32"] = "fp16"
    """dtype of the stored activation values"""
    model_dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    """dtype the model runs in (float32 is exact; bfloat16 halves memory on large models)"""
    shard_tokens: int | None = None
    """tokens per shard: records stream to disk every this many tokens, which bounds memory
    (default: as many as fit in about 512 MiB of records, between 256 and 65536; capture holds
    two shards at a time)"""
    shuffle: bool = False
    """shuffle the documents (with --seed) before taking --tokens tokens"""
    seed: int = 0
    """seed of the document shuffle"""
    adapter: str | None = None
    """'module:function' making the adapter for the model (default: moelens.capture.adapters.get_adapter)"""
    device: str | None = None
    """torch device (default: cuda for the local rank if available, else cpu)"""
    overwrite: bool = False
    """replace an existing store at --out instead of resuming or skipping it"""
    quiet: bool = False
    """no progress bar"""
    stop_after_shards: int | None = None
    """for testing resume: stop after writing this many shards, leaving the store unfinished"""

    def __post_init__(self):
        if not self.model:
            raise ConfigError("--model is required: a hub id or a local model directory")
        if self.out is None:
            raise ConfigError("--out is required: the directory of the store to write")
        if not self.corpus and not self.dataset:
            raise ConfigError("no corpus given; pass --corpus FILE ... or --dataset NAME")
        if self.corpus and self.dataset:
            raise ConfigError("give either --corpus files or --dataset, not both")
        for name in ("ctx", "batch_size", "shard_tokens"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.tokens is not None and self.tokens < 1:
            raise ConfigError(f"--tokens must be at least 1, got {self.tokens}")
        if any(l < 0 for l in self.layers):
            raise ConfigError(f"layers must be non-negative, got {self.layers}")
        for s in self.spaces:
            if s not in fmt.SPACES:
                raise ConfigError(f"unknown space {s!r}; choose from {', '.join(fmt.SPACES)}")


def load_model(name: str, dtype: str = "float32") -> tuple[Any, Any]:
    """``(model, tokenizer)`` through the adapters' loader, with transformers' own progress bars
    silenced: capture has its own, and a user error found after loading must still be the only
    line on stderr."""
    from moelens.capture.adapters import load_model as load

    with quiet_hf_progress():
        return load(name, dtype=dtype)


def make_adapter(spec: str | None, model: Any) -> Any:
    """``get_adapter(model)`` from the adapters package, or the factory named by ``spec``."""
    module_name, _, attr = (spec or "moelens.capture.adapters:get_adapter").partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr or "get_adapter")
    except (ImportError, AttributeError):
        raise ConfigError(f"cannot import adapter factory {spec or module_name + ':get_adapter'}; "
                          "check --adapter") from None
    return factory(model)


def model_identity(name: str, model: Any) -> dict[str, Any]:
    """Model id, hub revision, and for local directories a hash of the weight files."""
    ident = {"id": name, "model_type": getattr(model.config, "model_type", None),
             "revision": getattr(model.config, "_commit_hash", None), "weight_hash": None}
    path = Path(name)
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
            h.update(f.name.encode())
            h.update(sha256_file(f).encode())
        ident["weight_hash"] = h.hexdigest()
    return ident


def auto_shard_tokens(plans: list[Any], dtype: str, budget: int = 1 << 29) -> int:
    """Tokens per shard so that one shard's records take about ``budget`` bytes in memory
    (a power of two in [256, 65536]; depends only on the model and settings, never on timing).
    Capture holds two shards at a time (one computed, one being written): about 1 GiB."""
    vb = fmt.value_bytes(dtype)
    per_token = 40  # token table
    for p in plans:
        if p.needs_routing:
            per_token += p.top_k * 12
        if "expert" in p.spaces or "expert_out" in p.spaces:
            per_token += p.top_k * (16 + 4 + (p.widths["expert"] * vb if "expert" in p.spaces else 0))
        per_token += sum((4 + vb) * p.widths[s] for s in p.spaces if s in fmt.DENSE_SPACES)
    tokens = 256
    while tokens < 65536 and 2 * tokens * per_token <= budget:
        tokens *= 2
    return tokens


def _distributed() -> tuple[int, int, Any]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, None
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return dist.get_rank(), world, dist


def _device(cfg: CaptureConfig) -> str:
    import torch

    if cfg.device:
        return cfg.device
    return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu"


def _claim(root: Path, settings: dict[str, Any], overwrite: bool, rank: int, dist: Any) -> str:
    """Rank 0 prepares the directory; every rank learns the outcome (or the same error)."""
    outcome = [None]
    if rank == 0:
        try:
            outcome[0] = store_job.prepare(root, settings, overwrite)
        except MoelensError as exc:
            outcome[0] = "error:" + str(exc)
    if dist is not None:
        dist.broadcast_object_list(outcome, src=0)
    if outcome[0].startswith("error:"):
        raise StoreError(outcome[0][len("error:"):])
    return outcome[0]


def run(cfg: CaptureConfig) -> int:
    rank, world, dist = _distributed()
    try:
        return _run(cfg, rank, world, dist)
    finally:
        if dist is not None and dist.is_initialized():
            dist.destroy_process_group()


def _run(cfg: CaptureConfig, rank: int, world: int, dist: Any) -> int:
    if cfg.dataset:
        max_chars = None if cfg.tokens is None or cfg.shuffle else 32 * cfg.tokens
        corpus = corpus_mod.load_hub_dataset(cfg.dataset, cfg.split, cfg.text_field, max_chars)
    else:
        corpus = corpus_mod.load_files(list(cfg.corpus), cfg.text_field)
    if cfg.shuffle:
        order = np.random.default_rng(cfg.seed).permutation(len(corpus.documents))
        corpus.documents = [corpus.documents[i] for i in order]
    model, tokenizer = load_model(cfg.model, cfg.model_dtype)
    adapter = make_adapter(cfg.adapter, model)
    plans = plan_layers(adapter, cfg.layers, cfg.spaces)
    if tokenizer is not None and getattr(tokenizer, "is_fast", False):
        tok_info = {"source": "model", "name": cfg.model, "class": type(tokenizer).__name__}
    else:
        tokenizer, tok_info = corpus_mod.resolve_tokenizer(cfg.model, corpus.kind)
    windows = corpus_mod.tokenize(corpus, tokenizer, cfg.ctx, cfg.tokens)
    shard_tokens = cfg.shard_tokens or auto_shard_tokens(plans, cfg.dtype)
    shards = corpus_mod.plan_shards(windows, shard_tokens)
    model = model.to(_device(cfg)).eval()

    meta = {"model": model_identity(cfg.model, model) if rank == 0 else {"id": cfg.model},
            "tokenizer": tok_info,
            "corpus": {"kind": corpus.kind, "description": corpus.description,
                       "sha256": corpus.sha256(), "n_documents": len(corpus.documents)},
            "ctx": cfg.ctx}
    settings = {**meta, "tokens": cfg.tokens, "shard_tokens": shard_tokens,
                "batch_size": cfg.batch_size, "dtype": cfg.dtype, "shuffle": cfg.shuffle,
                "seed": cfg.seed, "layers": [p.to_json() for p in plans]}
    root = Path(cfg.out)
    status = _claim(root, settings, cfg.overwrite, rank, dist)
    if status == "done":
        if rank == 0:
            print(f"capture: {root} is already complete; pass --overwrite to recapture")
        return 0

    mine = [s for s in shards if s.index % world == rank and store_job.completed(root, s) is None]
    if cfg.stop_after_shards is not None:
        mine = mine[:cfg.stop_after_shards]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    bar = None
    if not cfg.quiet and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=sum(s.stop - s.start for s in mine), unit="tok", desc="capture")
    capture_shards(model, adapter, plans, mine, root, cfg.dtype, cfg.batch_size, pad_id,
                   on_shard=(lambda s: bar.update(s.stop - s.start)) if bar else None)
    if bar is not None:
        bar.close()
    if dist is not None:
        dist.barrier()
    if cfg.stop_after_shards is not None:
        if rank == 0:
            print(f"capture: stopped after {cfg.stop_after_shards} shard(s) as asked; rerun to resume")
        return 0
    if rank == 0:
        manifest = store_job.finalize(root, shards, corpus.documents, plans, settings,
                                      {**meta, "capture_config": to_dict(cfg)})
        print(f"capture: wrote {manifest['n_tokens']} tokens in {len(shards)} shard(s) to {root}")
    return 0
