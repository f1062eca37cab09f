"""The typed config of ``moelens data corpora``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from moelens.data.corpora.sources import KINDS, SOURCES
from moelens.errors import ConfigError


@dataclass
class CorporaConfig:
    """Build and cache the offline concept corpora (prose, code, LaTeX, POS)."""

    out: Path = Path("data/corpora")
    """Directory for <kind>.jsonl files, manifest.json and concept_counts.json."""
    kinds: list[str] = field(default_factory=lambda: list(KINDS))
    """Corpus kinds to build: prose, code, latex, pos (pos is drawn from the prose sources)."""
    sources: list[str] = field(default_factory=list)
    """Use only these sources (empty = all): python_docs kjv_bible jargon_file debian_reference
    shakespeare python_stdlib python_packages c_headers texlive_doc."""
    system_root: Path = Path("/")
    """Root of the system tree holding Debian package files (tests point it at a fake tree)."""
    python_roots: list[Path] = field(default_factory=list)
    """Directories of Python files for the Python sources (empty = this interpreter's stdlib
    and site-packages)."""
    install: bool = False
    """Try 'apt-get install -y' for missing Debian packages (needs root; only with the real
    system root). Without it, missing packages are skipped and reported."""
    max_docs_per_source: int = 1000
    """At most this many documents from each source (seeded random choice)."""
    max_doc_chars: int = 4000
    """Documents are cut at paragraph boundaries to at most this many characters."""
    min_doc_chars: int = 200
    """Pieces shorter than this are dropped."""
    pos_docs_per_source: int = 300
    """At most this many POS documents (plain-prose paragraphs, up to 1,500 characters) from
    each prose source; tagging them with spaCy is the slow step."""
    tag_pos: bool = True
    """Store spaCy POS tags with each pos document when spaCy is installed."""
    count_concepts: bool = True
    """Count every concept's positives on the built corpus (concept_counts.json)."""
    min_positives: int = 500
    """Concepts with fewer positive tokens than this are reported as scarce."""
    seed: int = 0
    """Seed for the choice of files and documents."""
    overwrite: bool = False
    """Rebuild even when a corpus with this config already exists."""
    quiet: bool = False
    """Print nothing but errors."""

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in KINDS]
        if bad or not self.kinds:
            raise ConfigError(f"unknown corpus kind {bad[0] if bad else '(none)'}; "
                              f"choose from {' '.join(KINDS)}")
        names = {s.name for s in SOURCES}
        bad = [s for s in self.sources if s not in names]
        if bad:
            raise ConfigError(f"unknown source {bad[0]!r}; choose from {' '.join(sorted(names))}")
        for name in ("max_docs_per_source", "max_doc_chars", "min_doc_chars", "pos_docs_per_source"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.min_doc_chars > self.max_doc_chars:
            raise ConfigError("min_doc_chars must not exceed max_doc_chars")
        self.out = Path(self.out)
        self.system_root = Path(self.system_root)
        self.python_roots = [Path(p) for p in self.python_roots]

    def identity(self) -> dict:
        """The settings that decide the corpus contents (a rerun with the same ones is a no-op)."""
        from moelens.config import to_dict

        d = to_dict(self)
        for key in ("overwrite", "quiet", "install", "out"):
            d.pop(key)
        return d
