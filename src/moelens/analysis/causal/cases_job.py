"""``moelens causal cases`` as a library call: build the LLM client the config names, generate and
validate trigger → target cases from an interpret run's labels (:mod:`.trigger_cases`), and write
``cases.json`` (the file ``moelens causal trigger --cases`` reads) and ``report.json``.

The response cache lives in ``OUT/cache`` unless the config names another; ``--overwrite``
keeps it, so a redone run with the same prompts sends no request.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moelens.analysis.causal import common, trigger_cases
from moelens.errors import CheckpointError

TOKENS_PER_CASE = 60
"""Answer length allowed per asked-for case (the backend's own limit when that is larger): a
sentence, a trigger and a target in JSON take about 40 tokens."""


@dataclass
class CasesResult:
    path: Path
    skipped: bool = False
    report: dict[str, Any] = field(default_factory=dict)


def make_client(cfg: Any, cache_dir: Path) -> Any:
    """The client of ``cfg.backend``: an OpenAI-compatible endpoint (``cfg.llm``) or a local
    model (``cfg.hf``), with the response cache in ``cache_dir``."""
    from moelens.analysis.autointerp.clients.base import ResponseCache

    cache = ResponseCache(cache_dir)
    if cfg.backend == "hf":
        from moelens.analysis.autointerp.clients.hf import HFClient

        h = cfg.hf
        return HFClient(h.model, cache, None, h.device, h.max_new_tokens, h.threads)
    from moelens.analysis.autointerp.clients.openai_compat import OpenAIClient, OpenAISettings

    s = cfg.llm
    return OpenAIClient(OpenAISettings(s.base_url, s.model, s.api_key_env, s.timeout, s.max_retries, s.backoff,
                                       s.max_backoff, s.concurrency, s.temperature, s.max_tokens, s.price_in,
                                       s.price_out), cache)


def load_tokenizer(model: str) -> Any:
    """The tokenizer saved beside the model the cases are for (its leading-space convention
    decides the target tokens)."""
    from transformers import AutoTokenizer

    path = Path(model).expanduser()
    try:
        return AutoTokenizer.from_pretrained(str(path) if path.exists() else model, local_files_only=True)
    except Exception as err:  # noqa: BLE001  (transformers raises many kinds)
        raise CheckpointError(f"cannot load the tokenizer of {model}: {str(err).splitlines()[0][:200]}; "
                              "give --model the directory of the model the cases are for") from err


def run(cfg: Any) -> CasesResult:
    from moelens.rundir import Stage, atomic_write_json

    out = Path(cfg.out)
    stage = Stage(out)
    if stage.done and not cfg.overwrite:
        common.check_done(out, cfg, "causal cases")
        return CasesResult(out, skipped=True)
    trigger_cases.read_labels(Path(cfg.labels))  # bad labels fail before a model or endpoint is touched
    tokenizer = load_tokenizer(cfg.model)
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir is not None else out / "cache"
    if cfg.overwrite and out.exists():  # redo everything but keep the response cache
        for child in out.iterdir():
            if child.resolve() != cache_dir.resolve():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    stage.begin(cfg, seed=cfg.seed)
    client = make_client(cfg, cache_dir)
    limit = cfg.hf.max_new_tokens if cfg.backend == "hf" else cfg.llm.max_tokens
    cases, report = trigger_cases.generate_cases(Path(cfg.labels), client, tokenizer, cfg.n_cases, cfg.seed,
                                                 cfg.examples, max(limit, TOKENS_PER_CASE * cfg.n_cases))
    report["model"] = cfg.model
    atomic_write_json(out / "cases.json", {"cases": trigger_cases.case_records(cases.cases),
                                           "rejected": cases.rejected})
    atomic_write_json(out / "report.json", report)
    stage.finish({"cases": len(cases.cases), "rejected": len(cases.rejected), "failures": report["failures"]})
    return CasesResult(out, report=report)
