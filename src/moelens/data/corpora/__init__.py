"""Offline concept corpora: real prose, code and LaTeX from packages present on the machine.

``moelens data corpora --out DIR`` writes ``<kind>.jsonl`` documents (``{"text", "source",
"licence", "origin"}``; pos documents also carry ``pos_tags``), ``concept_counts.json`` and a
``manifest.json`` with counts, sources, licences and a hash. See ``sources`` for what is read.
"""

from moelens.data.corpora.build import build_corpora, read_corpus  # noqa: F401
from moelens.data.corpora.command import run  # noqa: F401
from moelens.data.corpora.config import CorporaConfig  # noqa: F401
from moelens.data.corpora.sources import KINDS, SOURCES  # noqa: F401
