"""``moelens upcycle``: its typed config and a thin ``run`` (the upcycling is in :mod:`.upcycle`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moelens.errors import ConfigError
from moelens.models.presets import model_settings
from moelens.models.upcycle import load_dense, upcycle_model
from moelens.rundir import atomic_dir, atomic_write_json, provenance

MOE_FIELDS = ("num_experts", "top_k", "expert_width", "expert_act", "router", "router_temperature",
              "router_eps", "aux_loss_coef")
"""The settings an upcycle takes from the MoE preset; everything else comes from the source."""


@dataclass
class UpcycleConfig:
    """Settings of ``moelens upcycle``."""

    source: Path | None = None
    """directory of the saved dense moelens model (save_pretrained output)"""
    out: Path | None = None
    """directory to write the upcycled MoE model to (must not exist unless --overwrite)"""
    preset: str = "moex"
    """model preset (or YAML file) giving the MoE settings: num_experts, top_k, expert_width, expert_act, router, router_temperature, aux_loss_coef"""
    num_experts: int | None = None
    """override the preset's number of experts"""
    top_k: int | None = None
    """override the preset's experts per token"""
    expert_width: int | None = None
    """override the preset's expert width D"""
    router: str | None = None
    """override the preset's router (softmax or sparsity)"""
    expert_act: str | None = None
    """override the preset's expert activation (relu, gelu or silu)"""
    seed: int = 0
    """seed for the softmax router's weights and for padding units when D > dense width"""
    overwrite: bool = False
    """replace an existing output directory"""

    def __post_init__(self) -> None:
        if self.source is None or self.out is None:
            raise ConfigError("upcycle needs --source DIR (a dense moelens model) and --out DIR")
        self.source, self.out = Path(self.source), Path(self.out)

    def moe_settings(self) -> dict[str, Any]:
        """The MoE settings: the preset's MoE fields, then the explicit overrides."""
        settings = {k: v for k, v in model_settings(self.preset).items() if k in MOE_FIELDS}
        for name in ("num_experts", "top_k", "expert_width", "router", "expert_act"):
            if getattr(self, name) is not None:
                settings[name] = getattr(self, name)
        return settings



def run(cfg: UpcycleConfig) -> int:
    """Load ``source``, upcycle it, and save the MoE model to ``out`` (complete or not at all)."""
    out: Path = cfg.out  # type: ignore[assignment]
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not cfg.overwrite:
        raise ConfigError(f"{out} already exists; choose another --out or pass --overwrite")
    moe = cfg.moe_settings()
    dense = load_dense(cfg.source)  # type: ignore[arg-type]
    model = upcycle_model(dense, moe, cfg.seed)
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        atomic_write_json(tmp / "upcycle.json", {**provenance(cfg), "moe_settings": moe})
    c = model.config
    print(f"upcycled {cfg.source} -> {out}: {c.n_layer} layers x {c.num_experts} experts of width "
          f"{c.expert_width} (dense width {dense.config.ffn_width}), top-{c.top_k}, {c.router} router, "
          f"{c.expert_act} experts")
    return 0
