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
    from moelens.experiments.text_lm import build_corpora

    lang = cfg.language
    return build_corpora(stage / "corpora", ["prose", "code"], lang.sources, lang.install,
                         lang.max_docs_per_source, cfg.quiet)


def text_data(stage: Path, corpora_stage: Path, cfg: Any) -> dict[str, Any]:
    """Tokenize the corpora (a BPE trained on the training documents) into a token directory."""
    from moelens.experiments.text_lm import corpus_files, tokenize

    files = corpus_files(corpora_stage / "corpora", ["prose", "code"])
    return tokenize(stage / "data", files, cfg.language.vocab_size, cfg.quiet)


def lang_settings(kind: str, cfg: Any) -> dict[str, Any]:
    return {"kind": kind, "language": to_dict(cfg.language), "model": to_dict(cfg.model),
            "seed": cfg.seeds[0], "lr": cfg.train.lr, "min_lr": cfg.train.min_lr}


def train_language(kind: str, stage: Path, data: Path, cfg: Any) -> dict[str, Any]:
    """Train one language model and measure its perplexity on the whole held-out split."""
    from moelens.experiments.text_lm import Schedule, train_lm

    lang, m, t = cfg.language, cfg.model, cfg.train
    spec = {"preset": LANG_KINDS[kind], "n_layer": lang.n_layer, "n_head": m.n_head,
            "n_embd": lang.n_embd, "n_positions": lang.ctx}
    if kind == "dense_gelu":
        spec["ffn_width"] = m.top_k * (m.expert_width * lang.n_embd // m.n_embd)
    else:
        spec.update(num_experts=m.num_experts, top_k=m.top_k,
                    expert_width=m.expert_width * lang.n_embd // m.n_embd)
    sched = Schedule(ctx=lang.ctx, batch_size=lang.batch_size, max_iters=lang.max_iters,
                     lr=t.lr, min_lr=t.min_lr, warmup_iters=t.warmup_iters,
                     eval_iters=t.eval_iters, ckpt_interval=t.ckpt_interval, dtype=t.dtype,
                     device=t.device, cpu_threads=t.cpu_threads)
    res = train_lm(stage / "train", data, spec, sched, cfg.seeds[0], cfg.quiet)
    return {k: res[k] for k in ("val_loss", "perplexity", "tokens")}
