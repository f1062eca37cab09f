"""Documents with domain labels (prose, code, LaTeX, ...), for analyses that compare domains.

A label comes from the document itself or from its file: a ``.jsonl`` record's ``domain`` field
if it has one, else the file's name without its suffix (``moelens data corpora`` writes
``prose.jsonl``, ``code.jsonl``, ``latex.jsonl``, so its files label themselves). A ``.txt``
file is one document. Files are read whole: these corpora are small samples of each domain.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from moelens.errors import DataError

SUFFIXES = (".txt", ".text", ".md", ".jsonl")


@dataclass(frozen=True)
class LabelledDocument:
    """One document and its domain."""

    text: str
    domain: str


def read_labelled(paths: list[Path], text_field: str = "text", domain_field: str = "domain",
                  max_docs_per_file: int | None = None) -> list[LabelledDocument]:
    """The non-empty documents of ``paths`` in order, each with its domain label."""
    docs: list[LabelledDocument] = []
    for path in map(Path, paths):
        if not path.is_file():
            raise DataError(f"corpus file {path} does not exist; give existing .txt or .jsonl files")
        if path.suffix.lower() not in SUFFIXES:
            raise DataError(f"corpus file {path} is not .txt, .text, .md or .jsonl; convert it first")
        docs += _read_one(path, text_field, domain_field)[:max_docs_per_file]
    if not docs:
        raise DataError("the corpus holds no non-empty documents; give files with text")
    return docs


def _read_one(path: Path, text_field: str, domain_field: str) -> list[LabelledDocument]:
    if path.suffix.lower() != ".jsonl":
        text = path.read_text(encoding="utf-8", errors="replace")
        return [LabelledDocument(text, path.stem)] if text.strip() else []
    out = []
    # JSON Lines end at ASCII line ends only: a record's string may hold U+2028/U+2029/U+0085
    for n, line in enumerate(re.split(r"\r\n|\r|\n", path.read_text(encoding="utf-8")), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise DataError(f"{path}:{n} is not valid JSON; fix the line or drop it") from None
        if not isinstance(record, dict) or text_field not in record:
            raise DataError(f"{path}:{n} has no field {text_field!r}; set --text_field")
        text = str(record[text_field])
        if text.strip():
            out.append(LabelledDocument(text, str(record.get(domain_field) or path.stem)))
    return out
