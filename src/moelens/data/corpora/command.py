"""``moelens data corpora``: build and cache the offline concept corpora."""

from __future__ import annotations

import sys

from moelens.data.corpora.build import build_corpora
from moelens.data.corpora.config import CorporaConfig


def run(cfg: CorporaConfig) -> int:
    """Build the corpora; print per-source progress to stderr and the manifest path."""

    def log(message: str) -> None:
        if not cfg.quiet:
            print(message, file=sys.stderr)

    manifest = build_corpora(cfg, log)
    if not cfg.quiet:
        for kind, info in manifest["kinds"].items():
            print(f"{kind}: {info['n_docs']} documents, {info['n_chars']} characters")
        for name, reason in manifest["unavailable_concepts"].items():
            print(f"unavailable concept {name}: {reason}")
        print(f"manifest: {cfg.out / 'manifest.json'}")
    return 0
