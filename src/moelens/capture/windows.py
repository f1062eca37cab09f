"""Documents -> tokens with character offsets -> windows -> shards, as a stream.

Each document is tokenized once with offsets and cut into windows of at most ``ctx`` tokens that
never cross documents; windows are grouped into shards closed once they hold ``shard_tokens``
tokens. Both steps are generators: a document is tokenized only when its windows are needed and a
shard is handed on as soon as it is closed, so memory holds one document and one shard whatever
the corpus size. Everything here depends only on the documents and the settings, so shard
boundaries are the same in every run and on every rank.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moelens.errors import DataError


@dataclass
class Window:
    """Up to ``ctx`` consecutive tokens of one document: the unit of batching."""

    doc: int
    ids: np.ndarray  # int64 [n]
    offsets: np.ndarray  # int64 [n, 2] character span in the document


@dataclass
class ShardPlan:
    """Consecutive windows recorded together as shard ``index``: global tokens [start, stop)."""

    index: int
    start: int
    stop: int
    windows: list[Window] = field(default_factory=list)


def tokenize(documents: Iterable[str], tokenizer: Any, ctx: int, max_tokens: int | None,
             on_document: Callable[[int, str, bool], None] | None = None) -> Iterator[Window]:
    """Windows of at most ``ctx`` tokens of each document in turn, up to ``max_tokens`` in all.

    The next document is not read once ``max_tokens`` tokens are out. ``on_document(doc, text,
    used)`` hears of every document read, before its windows, with ``used`` telling whether it
    gives any token (the store keeps the texts of documents up to the last one used).
    """
    total = 0
    docs = iter(documents)
    doc_id = -1
    while max_tokens is None or total < max_tokens:
        text = next(docs, None)
        if text is None:
            break
        doc_id += 1
        try:
            enc = tokenizer(text, return_offsets_mapping=True)
        except Exception as exc:  # noqa: BLE001  (e.g. a character outside a closed vocabulary)
            raise DataError(f"document {doc_id} cannot be tokenized ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}); clean the corpus") from None
        ids = np.asarray(enc["input_ids"], dtype=np.int64)
        offsets = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
        if on_document is not None:
            on_document(doc_id, text, ids.size > 0)
        for a in range(0, ids.size, ctx):
            n = min(ctx, ids.size - a)
            if max_tokens is not None:
                n = min(n, max_tokens - total)
            if n <= 0:
                break
            total += n
            yield Window(doc_id, ids[a:a + n], offsets[a:a + n])
    if total == 0:
        raise DataError("the corpus produced no tokens; give non-empty documents")


def plan_shards(windows: Iterable[Window], shard_tokens: int) -> Iterator[ShardPlan]:
    """Consecutive windows grouped into shards of at least ``shard_tokens`` tokens (the last may
    be short), each handed on as soon as it is closed."""
    current = ShardPlan(0, 0, 0)
    for w in windows:
        current.windows.append(w)
        current.stop += w.ids.size
        if current.stop - current.start >= shard_tokens:
            yield current
            current = ShardPlan(current.index + 1, current.stop, current.stop)
    if current.windows:
        yield current
