"""Collecting documents from one source: find files, read them, split, cap (seeded)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from moelens.data.corpora import licences, readers
from moelens.data.corpora.sources import (
    Source,
    find_files,
    missing_reason,
    python_roots,
)
from moelens.errors import DataError


@dataclass
class Collected:
    """Documents of one source, or why there are none."""

    source: Source
    docs: list[dict] = field(default_factory=list)
    n_files: int = 0
    files_read: int = 0
    skipped: str | None = None


def _doc_licence(source: Source, path: Path, root: Path) -> str:
    if source.name == "python_packages":
        return licences.python_file_licence(path, root)
    if source.name == "c_headers":
        return licences.debian_file_licence(path, root)
    return source.licence


def _root_of(path: Path, roots: list[Path]) -> Path:
    for r in roots:
        if path.is_relative_to(r):
            return r
    return path.parent


def collect(source: Source, system_root: Path, py_roots: list[Path], max_docs: int,
            max_chars: int, min_chars: int, seed: int) -> Collected:
    """Up to ``max_docs`` documents of ``source``: files visited in a seeded random order until
    enough documents are in hand, then a seeded subsample, kept in reading order."""
    files = find_files(source, system_root, py_roots)
    out = Collected(source, n_files=len(files))
    out.skipped = missing_reason(source, files)
    if out.skipped:
        return out
    roots = python_roots(source, py_roots) if source.python else [system_root]
    rng = np.random.default_rng([seed, zlib.crc32(source.name.encode())])
    docs: list[dict] = []
    for i in rng.permutation(len(files)):
        path = files[int(i)]
        root = _root_of(path, roots)
        try:
            text = readers.read_text(path, source.reader)
        except (OSError, UnicodeError, DataError):
            continue
        out.files_read += 1
        licence = _doc_licence(source, path, root)
        origin = str(path.relative_to(root))
        for piece in readers.split_documents(text, max_chars, min_chars):
            docs.append({"text": piece, "source": source.name, "licence": licence,
                         "origin": origin})
        if len(docs) >= 2 * max_docs:
            break
    if len(docs) > max_docs:
        keep = np.sort(rng.choice(len(docs), size=max_docs, replace=False))
        docs = [docs[int(k)] for k in keep]
    out.docs = docs
    if not docs:
        out.skipped = f"{len(files)} file(s) found but none gave a document of {min_chars}+ chars"
    return out


def pos_documents(prose: list[dict], max_docs_per_source: int, max_chars: int,
                  seed: int) -> list[dict]:
    """Plain-prose documents for POS tagging, drawn from the prose documents of each source."""
    by_source: dict[str, list[dict]] = {}
    for doc in prose:
        by_source.setdefault(doc["source"], []).append(doc)
    out = []
    for name, docs in by_source.items():
        chosen = []
        for doc in docs:
            paras = readers.prose_paragraphs(doc["text"])
            if paras:
                for piece in readers.split_documents("\n\n".join(paras), max_chars, 1):
                    chosen.append({"text": piece, "source": name, "licence": doc["licence"],
                                   "origin": doc["origin"]})
        if len(chosen) > max_docs_per_source:
            rng = np.random.default_rng([seed, zlib.crc32(("pos:" + name).encode())])
            keep = np.sort(rng.choice(len(chosen), size=max_docs_per_source, replace=False))
            chosen = [chosen[int(k)] for k in keep]
        out += chosen
    return out
