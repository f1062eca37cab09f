"""``moelens causal trigger`` as a library call: validate the cases, test every labelled expert on
its own and the other experts' prompts, write the rows, the rank table and a figure."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moelens.analysis.causal import common, figures, trigger
from moelens.errors import DataError


@dataclass
class TriggerResult:
    path: Path
    skipped: bool = False
    n_cases: int = 0
    rejected: list[dict[str, str]] = field(default_factory=list)
    table: list[dict[str, Any]] = field(default_factory=list)


def run(cfg: Any) -> TriggerResult:
    from moelens.rundir import Stage, atomic_write_json

    stage = Stage(Path(cfg.out))
    if stage.done and not cfg.overwrite:
        common.check_done(stage.path, cfg, "causal trigger")
        return TriggerResult(stage.path, skipped=True)
    cases = trigger.load_cases(Path(cfg.cases))
    if not cases.cases:
        raise DataError(f"none of the {len(cases.rejected)} cases in {cfg.cases} can be tested: "
                        f"{cases.rejected[0]['reason'] if cases.rejected else 'the file holds no case'}")
    model, tok, adapter = common.load(cfg.model, cfg.model_dtype, cfg.threads)
    trigger.check_experts(cases.cases, adapter)
    stage.begin(cfg, overwrite=cfg.overwrite)
    rows = trigger.evaluate(model, adapter, tok, cases.cases)
    table = trigger.rank_table(rows)
    common.write_csv(rows, stage.path / "trigger.csv")
    common.write_csv(table, stage.path / "rank_table.csv")
    atomic_write_json(stage.path / "summary.json", {
        "cases": len(cases.cases), "rejected": len(cases.rejected), "rejected_cases": cases.rejected,
        "experts": len({(c.layer, c.expert) for c in cases.cases}), "rank_table": table})
    if cfg.figures:
        figures.rank_bars(table, trigger.CATEGORIES, stage.path / "figures" / "trigger_ranks.png")
    stage.finish({"rows": len(rows)})
    return TriggerResult(stage.path, n_cases=len(cases.cases), rejected=cases.rejected, table=table)
