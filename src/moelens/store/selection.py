"""Token selections split by shard, so a reader touches only the shards (and rows) asked for.

A selection is None (every token), an int array of global token indices (any order, repeats
allowed) or a bool mask. :func:`pieces` turns it into one ``(shard, local rows, output
positions)`` triple per shard holding selected tokens: the reader copies ``block[local]`` to
``out[positions]``, which keeps the caller's order and repeats without a per-token map of the
whole store.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

TokenSel = np.ndarray | list[int] | None


def pieces(starts: np.ndarray, stops: np.ndarray, sel: np.ndarray | None
           ) -> Iterator[tuple[int, np.ndarray | slice, np.ndarray | slice]]:
    """``(shard, local rows, output positions)`` for each shard that holds selected tokens.

    ``sel`` None gives every shard whole (rows ``0..n``, positions ``start..stop``); otherwise
    ``local`` and ``positions`` are int arrays, and ``positions`` index into ``sel``.
    """
    if sel is None:
        for s, (a, b) in enumerate(zip(starts.tolist(), stops.tolist())):
            yield s, slice(0, b - a), slice(a, b)
        return
    if sel.size == 0:
        return
    shard_of = np.searchsorted(starts, sel, side="right") - 1
    order = np.argsort(shard_of, kind="stable")
    shards, first = np.unique(shard_of[order], return_index=True)
    bounds = np.append(first[1:], order.size)
    for s, lo, hi in zip(shards.tolist(), first.tolist(), bounds.tolist()):
        pos = order[lo:hi]
        yield s, sel[pos] - starts[s], pos


def chunk_ranges(starts: np.ndarray, stops: np.ndarray, chunk_tokens: int) -> list[tuple[int, int]]:
    """Consecutive ``[start, stop)`` ranges covering all shards, each about ``chunk_tokens``
    tokens: whole shards are merged until a range reaches the size, larger shards are cut."""
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be at least 1, got {chunk_tokens}")
    out: list[tuple[int, int]] = []
    begin = None
    for a, b in zip(starts.tolist(), stops.tolist()):
        if b - a > chunk_tokens:
            if begin is not None:
                out.append((begin, a))
                begin = None
            out.extend((x, min(x + chunk_tokens, b)) for x in range(a, b, chunk_tokens))
            continue
        begin = a if begin is None else begin
        if b - begin >= chunk_tokens:
            out.append((begin, b))
            begin = None
    if begin is not None:
        out.append((begin, int(stops[-1])))
    return out
