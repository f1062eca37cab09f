"""``moelens capture``: record a model's units on a corpus into an activation store.

The settings live here (:class:`CaptureConfig`, the ``--help`` text); the job itself (streaming
the corpus, planning and writing shards, resume, ``torchrun``) is :mod:`moelens.capture.job`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from moelens.capture import job
from moelens.errors import ConfigError
from moelens.store import format as fmt


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
    model_dtype: Literal["default", "float32", "bfloat16", "float16", "auto"] = "default"
    """dtype the model runs in: default = bfloat16 on a GPU, float32 on the CPU; auto = the
    checkpoint's own (float32 is exact; bfloat16 halves the memory of a large model)"""
    shard_tokens: int | None = None
    """tokens per shard: records stream to disk every this many tokens, which bounds memory
    (default: as many as fit in about 512 MiB of records, between 256 and 65536; capture holds
    two shards at a time)"""
    shuffle: bool = False
    """shuffle the documents (with --seed) before taking --tokens tokens (a first pass over the
    corpus notes where each document starts: 16 bytes of memory a document)"""
    seed: int = 0
    """seed of the document shuffle"""
    adapter: str | None = None
    """'module:function' making the adapter for the model (default: moelens.capture.adapters.get_adapter)"""
    device: str | None = None
    """torch device of a model that fits one device: cpu, cuda or cuda:N (default: the local
    rank's GPU if there is one, else cpu)"""
    device_map: str | None = None
    """split the model over devices with accelerate: auto, balanced, balanced_low_0, sequential,
    or a JSON map of module names to devices ({"model.layers.0": 0, "lm_head": "cpu"}) or a file
    holding one; weights that fit nowhere go to disk (--offload_folder)"""
    max_memory: list[str] = field(default_factory=list)
    """per-device budgets for --device_map, e.g. 0=70GiB 1=70GiB cpu=200GiB (implies --device_map
    auto); each must hold at least the largest decoder layer"""
    offload_folder: Path | None = None
    """where --device_map keeps weights offloaded to disk (default: a temporary directory)"""
    dry_run: bool = False
    """print the store's expected bytes per layer and space, the forward cost and the capture
    time at a measured tokens/s (a trial of two batches), and write nothing"""
    threads: int | None = None
    """torch CPU threads (default: torch's own, e.g. OMP_NUM_THREADS); on the CPU the stored
    values depend on it to the last bit, so an unfinished store resumes only with the same count"""
    overwrite: bool = False
    """replace an existing store at --out instead of resuming or skipping it"""
    quiet: bool = False
    """no progress bar"""
    stop_after_shards: int | None = None
    """for testing resume: stop after writing this many shards, leaving the store unfinished"""

    def __post_init__(self):
        if not self.model:
            raise ConfigError("--model is required: a hub id or a local model directory")
        if self.out is None and not self.dry_run:
            raise ConfigError("--out is required: the directory of the store to write")
        if not self.corpus and not self.dataset:
            raise ConfigError("no corpus given; pass --corpus FILE ... or --dataset NAME")
        if self.corpus and self.dataset:
            raise ConfigError("give either --corpus files or --dataset, not both")
        for name in ("ctx", "batch_size", "shard_tokens", "threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.tokens is not None and self.tokens < 1:
            raise ConfigError(f"--tokens must be at least 1, got {self.tokens}")
        if any(l < 0 for l in self.layers):
            raise ConfigError(f"layers must be non-negative, got {self.layers}")
        for s in self.spaces:
            if s not in fmt.SPACES:
                raise ConfigError(f"unknown space {s!r}; choose from {', '.join(fmt.SPACES)}")


def run(cfg: CaptureConfig) -> int:
    """Run the capture and say where the store went (rank 0 only under ``torchrun``)."""
    result = job.capture(cfg)
    root = result.root
    if result.status == "planned":
        return 0
    if result.status == "done":
        if result.rank == 0:
            print(f"capture: {root} is already complete; pass --overwrite to recapture")
        return 0
    if result.rank == 0:
        if result.status == "stopped":
            print(f"capture: stopped after {cfg.stop_after_shards} shard(s) as asked; rerun to resume")
        else:
            print(f"capture: wrote {result.n_tokens} tokens in {result.n_shards} shard(s) to {root}")
    return 0
