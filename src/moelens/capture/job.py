"""One capture job: corpus, model and adapter in; a complete (or resumed) activation store out.

Runs in one process or under ``torchrun`` (gloo): every rank streams the corpus the same way,
shards are dealt out by index (shard i goes to rank i mod world size), rank 0 claims the output
directory first and writes the manifest after a barrier. Because shard boundaries and batches
depend only on the token stream, the store is the same whatever the number of processes, and a
killed capture resumes from its complete shards when the same command is run again.

The corpus is streamed: documents are read and tokenized as windows are needed, shards are planned
as the windows come and let go once written, so host memory holds one document and two shards
whatever the corpus size (``--shuffle`` adds an index of 16 bytes a document).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import itertools
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moelens.capture import corpus as corpus_mod
from moelens.capture import placement as placement_mod
from moelens.capture import store_job
from moelens.capture.capture import capture_shards, plan_layers, token_table
from moelens.capture.windows import ShardPlan, plan_shards, tokenize
from moelens.config import to_dict
from moelens.errors import ConfigError, MoelensError, StoreError
from moelens.hf_progress import quiet_hf_progress
from moelens.rundir import sha256_file
from moelens.store import format as fmt


@dataclass
class CaptureResult:
    """What a capture job did, for the command to report (printed by rank 0 only)."""

    root: Path
    rank: int
    status: str  # "done" (complete), "stopped" (--stop_after_shards), "wrote" or "planned" (--dry_run)
    n_tokens: int = 0
    n_shards: int = 0


def load_model(name: str, dtype: str = "float32", placement: Any = None) -> tuple[Any, Any]:
    """``(model, tokenizer)`` through the adapters' loader, with transformers' own progress bars
    silenced: capture has its own, and a user error found after loading must still be the only
    line on stderr. With a ``placement`` the model is placed (one device, or split by a device
    map) in the placement's dtype."""
    from moelens.capture.adapters import load_model as load

    with quiet_hf_progress(), _quiet_offload_warning():
        model, tokenizer = load(name, dtype=placement.dtype if placement is not None else dtype,
                                placement=placement)
    if placement is not None and placement.device_map is None:
        model = model.to(placement.device)
    return model, tokenizer


@contextlib.contextmanager
def _quiet_offload_warning() -> Iterator[None]:
    """accelerate warns on stderr that offloaded weights sit on the meta device: expected with
    --device_map (capture prints where the modules went instead)."""
    import logging

    log = logging.getLogger("accelerate.big_modeling")
    before = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(before)


@contextlib.contextmanager
def offload_dir(placement: Any) -> Iterator[Any]:
    """The placement, with a temporary ``offload_folder`` (removed afterwards) when a device map
    may offload weights to disk and the user named no folder."""
    if placement.device_map is None or placement.offload_folder is not None:
        yield placement
        return
    with tempfile.TemporaryDirectory(prefix="moelens-offload-") as tmp:
        yield dataclasses.replace(placement, offload_folder=Path(tmp))


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


def open_corpus(cfg: Any) -> corpus_mod.Corpus:
    """The corpus of ``cfg`` (a :class:`moelens.capture.command.CaptureConfig`), not yet read."""
    if cfg.dataset:
        max_chars = None if cfg.tokens is None or cfg.shuffle else 32 * cfg.tokens
        corpus = corpus_mod.load_hub_dataset(cfg.dataset, cfg.split, cfg.text_field, max_chars)
    else:
        corpus = corpus_mod.load_files(list(cfg.corpus), cfg.text_field)
    if cfg.shuffle:
        corpus.shuffle_seed = cfg.seed
    return corpus


def capture(cfg: Any) -> CaptureResult:
    """Run the capture ``cfg`` (a :class:`moelens.capture.command.CaptureConfig`) on this rank."""
    rank, world, dist = _distributed()
    try:
        return _capture(cfg, rank, world, dist)
    finally:
        if dist is not None and dist.is_initialized():
            dist.destroy_process_group()


def _capture(cfg: Any, rank: int, world: int, dist: Any) -> CaptureResult:
    import torch

    placement = placement_mod.resolve(cfg.device, cfg.model_dtype, cfg.device_map, cfg.max_memory,
                                      cfg.offload_folder)
    if cfg.dry_run and world > 1:
        raise ConfigError("--dry_run plans a capture in one process; run it without torchrun")
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    corpus = open_corpus(cfg)
    with offload_dir(placement) as placement:
        return _capture_placed(cfg, rank, world, dist, corpus, placement)


def _capture_placed(cfg: Any, rank: int, world: int, dist: Any, corpus: corpus_mod.Corpus,
                    placement: Any) -> CaptureResult:
    import torch

    model, tokenizer = load_model(cfg.model, placement=placement)
    if rank == 0 and not cfg.quiet and getattr(model, "hf_device_map", None):
        print(f"capture: model placed by --device_map: {placement_mod.describe_map(model.hf_device_map)}",
              flush=True)
    adapter = make_adapter(cfg.adapter, model)
    plans = plan_layers(adapter, cfg.layers, cfg.spaces)
    if tokenizer is not None and getattr(tokenizer, "is_fast", False):
        tok_info = {"source": "model", "name": cfg.model, "class": type(tokenizer).__name__}
    else:
        tokenizer, tok_info = corpus_mod.resolve_tokenizer(cfg.model, corpus.kind)
    documents = store_job.DocumentLog() if rank == 0 else None
    hear = documents.add if documents is not None and not cfg.dry_run else None
    windows = tokenize(corpus.documents(), tokenizer, cfg.ctx, cfg.tokens, on_document=hear)
    first = next(windows)  # a corpus without tokens fails here, before anything is written
    windows = itertools.chain([first], windows)
    shard_tokens = cfg.shard_tokens or auto_shard_tokens(plans, cfg.dtype)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    if cfg.dry_run:
        from moelens.capture.dry_run import dry_run

        n = dry_run(model, adapter, plans, windows, cfg, placement, shard_tokens, pad_id, cfg.quiet)
        return CaptureResult(Path(cfg.out or "."), rank, "planned", n)

    meta = {"model": model_identity(cfg.model, model) if rank == 0 else {"id": cfg.model},
            "tokenizer": tok_info, "ctx": cfg.ctx}
    corpus_id = {"kind": corpus.kind, "description": corpus.description}
    settings = {**meta, "corpus": corpus_id, "tokens": cfg.tokens, "shard_tokens": shard_tokens,
                "batch_size": cfg.batch_size, "dtype": cfg.dtype, "shuffle": cfg.shuffle,
                "seed": cfg.seed, "layers": [p.to_json() for p in plans],
                "model_dtype": placement.dtype, "compute": placement.compute,
                store_job.THREADS: torch.get_num_threads() if placement.compute == "cpu" else None}
    root = Path(cfg.out)
    status = _claim(root, settings, cfg.overwrite, rank, dist)
    if status == "done":
        return CaptureResult(root, rank, "done")
    if documents is not None:
        documents.open(root)

    spans: list[tuple[int, int, int]] = []

    def mine() -> Iterator[ShardPlan]:
        """This rank's shards still to do; every shard's span is noted, complete ones checked."""
        taken = 0
        for shard in plan_shards(windows, shard_tokens):
            spans.append((shard.index, shard.start, shard.stop))
            if shard.index % world != rank:
                continue
            if store_job.completed(root, shard) is not None:
                store_job.check_tokens(root, shard, token_table(shard.windows))
                if bar is not None:
                    bar.update(shard.stop - shard.start)
                continue
            if cfg.stop_after_shards is not None and taken >= cfg.stop_after_shards:
                return
            taken += 1
            yield shard

    bar = None
    if not cfg.quiet and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=cfg.tokens if world == 1 else None, unit="tok", desc="capture")
    capture_shards(model, adapter, plans, mine(), root, cfg.dtype, cfg.batch_size, pad_id,
                   on_shard=(lambda s: bar.update(s.stop - s.start)) if bar is not None else None)
    if bar is not None:
        bar.close()
    if dist is not None:
        dist.barrier()
    if cfg.stop_after_shards is not None:
        if documents is not None:
            documents.close()  # left under its temporary name: the store is unfinished
        return CaptureResult(root, rank, "stopped")
    if rank == 0:
        corpus_meta = {**corpus_id, **documents.describe()}
        manifest = store_job.finalize(root, spans, documents, plans, settings,
                                      {**meta, "corpus": corpus_meta, "capture_config": to_dict(cfg)})
        return CaptureResult(root, rank, "wrote", manifest["n_tokens"], len(spans))
    return CaptureResult(root, rank, "wrote")
