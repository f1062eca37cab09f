"""``moelens specialize``: routing statistics and expert specialization of a store."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from moelens.errors import ConfigError


@dataclass
class SpecializeConfig:
    store: Path | None = None
    """activation store directory (routing is enough for the statistics; the output view needs
    the expert space)"""
    model: str = ""
    """the model the store was captured from (its unembedding and final norm); without it only
    the routing statistics are computed"""
    ks: list[int] = field(default_factory=list)
    """cluster counts of the unembedding (default: 10 50 100 1000 5000, those below the vocabulary size)"""
    layers: list[int] = field(default_factory=list)
    """layers to analyse (default: every layer with routing in the store)"""
    lens: Literal["final_norm", "raw"] = "final_norm"
    """output view: expert output through the final norm then the unembedding (corrected), or
    straight into the unembedding (as the published scripts did)"""
    top: int = 3
    """logit-lens tokens per routed row in the output view"""
    draws: int = 10
    """multinomial draws of the small-sample null"""
    seed: int = 0
    """seed of the k-means and the null draws"""
    domains: list[Path] = field(default_factory=list)
    """corpus files labelling the store's documents by domain (a .jsonl record's 'domain' field,
    else the file's name; matched by text) for the domain statistics"""
    text_field: str = "text"
    """field holding the text in .jsonl domain files"""
    always_on: float = 0.9
    """an expert routed on at least this share of tokens is 'always on'"""
    min_count: int = 5
    """token ids seen fewer times are left out of the vocabulary specialization"""
    model_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """dtype the model is loaded in"""
    threads: int | None = None
    """torch CPU threads (default: torch's own)"""
    out: Path = Path("runs/specialize")
    """output directory (tables, matrices/, figures/, summary.json)"""
    figures: bool = True
    """draw figures (PNG) into OUT/figures"""
    overwrite: bool = False
    """redo a finished run in OUT"""
    quiet: bool = False
    """no progress output"""

    def __post_init__(self) -> None:
        if self.store is None:
            raise ConfigError("--store is required: the activation store to analyse")
        if any(k < 1 for k in self.ks):
            raise ConfigError(f"--ks must be positive cluster counts, got {self.ks}")
        if self.top < 1 or self.draws < 0 or self.min_count < 1:
            raise ConfigError("--top and --min_count must be at least 1 and --draws non-negative")
        if not 0 < self.always_on <= 1:
            raise ConfigError(f"--always_on is a share of tokens in (0, 1], got {self.always_on}")


def run(cfg: SpecializeConfig) -> int:
    from moelens.analysis.specialization.run import specialize

    res = specialize(cfg)
    if cfg.quiet:
        return 0
    if res.skipped:
        print(f"specialize: {res.path} is already done; pass --overwrite to redo it")
        return 0
    s = res.summary
    if not s["model"]:
        print("specialize: no --model given, so only routing statistics (no specialization)")
    for key, value in s["mean_specialization"].items():
        print(f"specialize: mean {key.replace('_K', ' specialization at K=')}: {value:.3f} bits")
    for r in s["routing"]:
        print(f"specialize: layer {r['layer']}: {r['dead']} dead, {r['always_on']} always-on experts, "
              f"vocabulary specialization {r['vocabulary_specialization']:.2f} (chance {r['vocabulary_chance']:.2f})")
    print(f"specialize: tables, matrices and figures in {res.path}")
    return 0
