"""The quickstart's stages after probing, each a call into the analysis that owns the work:
specialization and routing statistics (``moelens specialize``) of the MoE models.

Every analysis reads the stores of the capture stage and writes its run stage under the run
directory (``specialize/<model>/``), which the report reads; a finished analysis run is skipped
when an interrupted stage is rerun.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from moelens.experiments.pipeline import Step
from moelens.experiments.quickstart_layout import MOE_PRESETS, model_dir, store_dir


def moe_models(cfg: Any) -> list[str]:
    return [n for n in cfg.model.models if n in MOE_PRESETS]


def _specialize(cfg: Any, root: Path) -> Callable[[Path], dict[str, Any]]:
    def run(_stage: Path) -> dict[str, Any]:
        from moelens.analysis.specialization.command import SpecializeConfig
        from moelens.analysis.specialization.run import specialize

        out = {}
        for name in moe_models(cfg):
            res = specialize(SpecializeConfig(
                store=store_dir(root, name), model=str(model_dir(root, name)),
                ks=list(cfg.specialize.ks), seed=cfg.seed, out=root / "specialize" / name,
                quiet=cfg.quiet))
            out[name] = (res.summary or {}).get("mean_specialization")
        return out
    return run


def steps(cfg: Any, captured: dict[str, Any]) -> list[Step]:
    """The analysis stages, each with the settings that decide its result."""
    root = Path(cfg.out)
    if not moe_models(cfg):
        return []
    return [Step("specialize", "specialization and routing statistics", _specialize(cfg, root),
                 {**captured, "specialize": dataclasses.asdict(cfg.specialize)})]
