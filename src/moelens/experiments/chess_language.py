"""The language side of the MoE-X comparison at CPU scale (the paper's Table 2, for orientation).

Dense GELU, Switch and MoE-X with the same sizes and budget are trained on the offline prose +
code corpora (``moelens data corpora``: Debian documentation, the KJV bible, the Jargon File,
Python sources; a BPE tokenizer trained on them by ``moelens data text``) and compared by
perplexity on the held-out documents. The paper's models are GPT-2 Small/Medium sized on
FineWeb; only the ordering of the three can be compared, not the numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moelens.config import to_dict

LANG_KINDS = {"dense_gelu": "dense-gelu", "switch": "switch", "moex": "moex"}


def corpora(stage: Path, cfg: Any) -> dict[str, Any]:
    """Build the prose and code corpora (no POS tags, no concept counts)."""
    from moelens.data.corpora.build import build_corpora
    from moelens.data.corpora.config import CorporaConfig
    from moelens.errors import DataError

    lang = cfg.language
    out = stage / "corpora"
    manifest = build_corpora(CorporaConfig(
        out=out, kinds=["prose", "code"], sources=list(lang.sources), install=lang.install,
        tag_pos=False,
        count_concepts=False, max_docs_per_source=lang.max_docs_per_source, quiet=cfg.quiet),
        log=lambda _msg: None)
    docs = {k: v["n_docs"] for k, v in manifest["kinds"].items()}
    if not sum(docs.values()):
        raise DataError("the offline corpora are empty; install their Debian packages (rerun with "
                        "--language.install) or pass --language.enabled false")
    return {"documents": docs, "chars": {k: v["n_chars"] for k, v in manifest["kinds"].items()}}


def text_data(stage: Path, corpora_stage: Path, cfg: Any) -> dict[str, Any]:
    """Tokenize the corpora (a BPE trained on the training documents) into a token directory."""
    from moelens.data.commands import TextDataConfig
    from moelens.data.text import build_text
    from moelens.data.tokens import TokenData

    files = [p for p in (corpora_stage / "corpora" / f"{k}.jsonl" for k in ("prose", "code"))
             if p.exists() and p.stat().st_size > 0]
    build_text(TextDataConfig(inputs=files, out=stage / "data",
                              vocab_size=cfg.language.vocab_size, val_fraction=0.05,
                              quiet=cfg.quiet))
    meta = TokenData(stage / "data").meta
    return {"train_tokens": meta["n_train"], "val_tokens": meta["n_val"],
            "vocab_size": meta["vocab_size"]}


def lang_settings(kind: str, cfg: Any) -> dict[str, Any]:
    return {"kind": kind, "language": to_dict(cfg.language), "model": to_dict(cfg.model),
            "seed": cfg.seeds[0], "lr": cfg.train.lr, "min_lr": cfg.train.min_lr}


def train_language(kind: str, stage: Path, data: Path, cfg: Any) -> dict[str, Any]:
    """Train one language model and measure its perplexity on the whole held-out split."""
    from moelens.training.command import ModelSpec, TrainConfig
    from moelens.training.evaluate import EvalConfig
    from moelens.training.loop import train
    from moelens.training.scoring import evaluate

    lang, m, t = cfg.language, cfg.model, cfg.train
    spec = {"preset": LANG_KINDS[kind], "n_layer": lang.n_layer, "n_head": m.n_head,
            "n_embd": lang.n_embd, "n_positions": lang.ctx}
    if kind == "dense_gelu":
        spec["ffn_width"] = m.top_k * (m.expert_width * lang.n_embd // m.n_embd)
    else:
        spec.update(num_experts=m.num_experts, top_k=m.top_k,
                    expert_width=m.expert_width * lang.n_embd // m.n_embd)
    out = stage / "train"
    train(TrainConfig(data=data, out=out, model=ModelSpec(**spec), ctx=lang.ctx,
                      batch_size=lang.batch_size, max_iters=lang.max_iters, lr=t.lr,
                      min_lr=t.min_lr, warmup_iters=min(t.warmup_iters, lang.max_iters - 1),
                      eval_interval=0, eval_iters=t.eval_iters,
                      log_interval=max(1, lang.max_iters // 20), ckpt_interval=t.ckpt_interval,
                      dtype=t.dtype, device=t.device, cpu_threads=t.cpu_threads,
                      seed=cfg.seeds[0], resume=True, quiet=cfg.quiet))
    res = evaluate(EvalConfig(model=out / "model", data=data, device=t.device, quiet=True))
    return {"val_loss": res["loss"], "perplexity": res["perplexity"], "tokens": res["tokens"]}
