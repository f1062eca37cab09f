"""Language models on the offline corpora: the pieces both experiments share.

``moelens experiment chess`` trains its language side with these, ``moelens experiment language``
its whole model roster: build the corpora (``moelens data corpora``'s library), train a BPE
tokenizer and tokenize them (``moelens data text``), and train one model on the token directory
with resume always on, then measure its perplexity on the whole held-out split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence


def build_corpora(out: Path, kinds: Sequence[str], sources: Sequence[str], install: bool,
                  max_docs_per_source: int, quiet: bool, tag_pos: bool = False,
                  system_root: Path = Path("/")) -> dict[str, Any]:
    """Build the corpora of ``kinds`` into ``out`` (a DataError when every one is empty); returns
    documents and characters per kind."""
    from moelens.data.corpora.build import build_corpora as build
    from moelens.data.corpora.config import CorporaConfig
    from moelens.errors import DataError

    manifest = build(CorporaConfig(
        out=out, kinds=list(kinds), sources=list(sources), install=install, tag_pos=tag_pos,
        system_root=system_root,
        count_concepts=False, max_docs_per_source=max_docs_per_source, quiet=quiet),
        log=lambda _msg: None)
    docs = {k: v["n_docs"] for k, v in manifest["kinds"].items()}
    if not sum(docs.values()):
        raise DataError("the offline corpora are empty; install their Debian packages (rerun with "
                        "--language.install / --corpus.install) or choose other sources")
    return {"documents": docs, "chars": {k: v["n_chars"] for k, v in manifest["kinds"].items()}}


def corpus_files(corpora: Path, kinds: Sequence[str]) -> list[Path]:
    """The non-empty ``<kind>.jsonl`` files of a corpora directory, in ``kinds`` order."""
    return [p for p in (corpora / f"{k}.jsonl" for k in kinds)
            if p.exists() and p.stat().st_size > 0]


def tokenize(out: Path, files: list[Path], vocab_size: int, quiet: bool) -> dict[str, Any]:
    """A BPE tokenizer trained on the training documents, and the token directory ``out``."""
    from moelens.data.commands import TextDataConfig
    from moelens.data.text import build_text
    from moelens.data.tokens import TokenData

    build_text(TextDataConfig(inputs=files, out=out, vocab_size=vocab_size, val_fraction=0.05,
                              quiet=quiet))
    meta = TokenData(out).meta
    return {"train_tokens": meta["n_train"], "val_tokens": meta["n_val"],
            "vocab_size": meta["vocab_size"]}


@dataclass(frozen=True)
class Schedule:
    """How a language model is trained (the same for every model of one comparison)."""

    ctx: int
    batch_size: int
    max_iters: int
    lr: float
    min_lr: float
    warmup_iters: int
    eval_iters: int
    ckpt_interval: int
    dtype: str = "auto"
    device: str = "auto"
    cpu_threads: int = 1


def train_lm(out: Path, data: Path, spec: dict[str, Any], sched: Schedule, seed: int,
             quiet: bool) -> dict[str, Any]:
    """Train (or resume) one model into ``out`` (its ``model/`` is the saved model) and measure
    its perplexity on the whole held-out split."""
    from moelens.training.command import ModelSpec, TrainConfig
    from moelens.training.evaluate import EvalConfig
    from moelens.training.loop import train
    from moelens.training.scoring import evaluate

    s = sched
    outcome = train(TrainConfig(
        data=data, out=out, model=ModelSpec(**spec), ctx=s.ctx, batch_size=s.batch_size,
        max_iters=s.max_iters, lr=s.lr, min_lr=s.min_lr,
        warmup_iters=min(s.warmup_iters, s.max_iters - 1), eval_interval=0,
        eval_iters=s.eval_iters, log_interval=max(1, s.max_iters // 20),
        ckpt_interval=s.ckpt_interval, dtype=s.dtype, device=s.device,
        cpu_threads=s.cpu_threads, seed=seed, resume=True, quiet=quiet))
    res = evaluate(EvalConfig(model=out / "model", data=data, device=s.device, quiet=True))
    return {"val_loss": res["loss"], "perplexity": res["perplexity"], "tokens": res["tokens"],
            "parameters": outcome.summary.get("parameters")}
