"""The store's tokens as text, cut into the fixed windows every unit is scanned in.

A store records each token's document and character span, and its position in the model's
context window. Tokens of one context window form a *segment*; each segment is cut into
consecutive *chunks* of ``window`` tokens (the paper scans random 32-token windows; delphi cuts
its rows the same way). A unit's score for a chunk is its largest activation in it, so picking
examples is a matter of ranking chunks; the window shown for a chosen chunk is then re-centred
on the chunk's strongest token (clipped to its segment), so the activating token sits in the
middle of its context.

Token text: token ``i`` reads ``document[end(i-1) : end(i)]`` (the gap before a token, such as
a space, belongs to it, as in byte-level BPE), the first token of a window only its own span.

Memory: the store's token table and document texts (read once per run), plus two int arrays per
chunk; nothing per unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moelens.errors import StoreError


@dataclass
class Window:
    """One context window shown to an explainer or a judge."""

    start: int
    """global index (in the store) of its first token"""
    tokens: list[str]
    token_ids: list[int]
    acts: list[float]
    """the unit's activation on each token (0 where it does not fire / is not routed)"""
    kind: str
    """activating, or the source of a non-activating window: random, others, hard"""
    chunk: int
    decile: int | None = None
    """1 (weakest) .. 10 (strongest) among the unit's activating windows; None for negatives"""
    fires: bool = True
    """whether the unit fires anywhere in the window (a fallback negative may)"""
    source: str | None = None
    """for 'others' negatives: the unit whose top windows it came from"""
    marks: list[int] | None = None
    """tokens to mark when shown as a binary negative: the source unit's highlighted tokens"""

    @property
    def max_act(self) -> float:
        return max(self.acts) if self.acts else 0.0

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    def highlighted(self, fraction: float = 0.3) -> list[int]:
        """Tokens above ``fraction`` × the window's max (delphi's highlight rule); none if it never fires."""
        top = self.max_act
        if top <= 0:
            return []
        return [i for i, a in enumerate(self.acts) if a > fraction * top]

    def to_json(self) -> dict:
        out = {"start": self.start, "kind": self.kind, "chunk": self.chunk, "decile": self.decile,
               "fires": self.fires, "tokens": self.tokens, "token_ids": self.token_ids,
               "acts": [round(float(a), 6) for a in self.acts]}
        if self.source is not None:
            out["source"] = self.source
        if self.marks is not None:
            out["marks"] = self.marks
        return out

    @classmethod
    def from_json(cls, d: dict) -> Window:
        return cls(d["start"], list(d["tokens"]), list(d["token_ids"]), list(d["acts"]), d["kind"],
                   d["chunk"], d.get("decile"), d.get("fires", True), d.get("source"), d.get("marks"))


class Corpus:
    """Tokens, texts, segments and chunks of a store (built once per run)."""

    def __init__(self, ids: np.ndarray, doc_ids: np.ndarray, positions: np.ndarray,
                 offsets: np.ndarray, documents: list[str], window: int):
        self.ids = np.asarray(ids, dtype=np.int64)
        self.doc_ids = np.asarray(doc_ids, dtype=np.int64)
        self.offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
        self.documents = documents
        self.window = int(window)
        n = self.ids.size
        positions = np.asarray(positions, dtype=np.int64)
        new = np.ones(n, dtype=bool)
        if n > 1:
            new[1:] = (self.doc_ids[1:] != self.doc_ids[:-1]) | (positions[1:] != positions[:-1] + 1)
        seg_starts = np.flatnonzero(new)
        seg_stops = np.append(seg_starts[1:], n)
        seg_of = np.cumsum(new) - 1 if n else np.zeros(0, np.int64)
        self.seg_start = seg_starts[seg_of]
        self.seg_stop = seg_stops[seg_of]
        starts, valid = [], []
        for a, b in zip(seg_starts, seg_stops):
            cs = np.arange(a, b, self.window)
            starts.append(cs)
            lengths = np.minimum(cs + self.window, b) - cs
            valid.append((lengths >= min(self.window // 2, b - a)) & (lengths > 0))
        self.chunk_starts = np.concatenate(starts) if starts else np.zeros(0, np.int64)
        self.chunk_stops = np.append(self.chunk_starts[1:], n) if n else np.zeros(0, np.int64)
        self.chunk_valid = np.concatenate(valid) if valid else np.zeros(0, bool)

    @classmethod
    def from_store(cls, store, window: int) -> Corpus:
        if int(store.n_tokens) == 0:
            raise StoreError("the store holds no tokens; capture a non-empty corpus first")
        return cls(store.tokens(), store.doc_ids(), store.positions(), store.offsets(),
                   store.documents(), window)

    @property
    def n_tokens(self) -> int:
        return int(self.ids.size)

    @property
    def n_chunks(self) -> int:
        return int(self.chunk_starts.size)

    def chunk_max(self, act: np.ndarray) -> np.ndarray:
        """The unit's largest activation in each chunk (chunks partition the tokens)."""
        if not self.n_chunks:
            return np.zeros(0, np.float32)
        return np.maximum.reduceat(np.asarray(act, dtype=np.float32), self.chunk_starts)

    def peak(self, chunk: int, act: np.ndarray) -> int:
        a, b = int(self.chunk_starts[chunk]), int(self.chunk_stops[chunk])
        return a + int(np.argmax(act[a:b]))

    def span(self, chunk: int, act: np.ndarray | None, centre: bool = True) -> tuple[int, int]:
        """Token range of the window shown for ``chunk``: centred on its peak when ``centre``."""
        a, b = int(self.chunk_starts[chunk]), int(self.chunk_stops[chunk])
        if not centre or act is None:
            return a, b
        p = self.peak(chunk, act)
        s0, s1 = int(self.seg_start[p]), int(self.seg_stop[p])
        lo = min(max(p - self.window // 2, s0), max(s0, s1 - self.window))
        return lo, min(lo + self.window, s1)

    def pieces(self, lo: int, hi: int) -> list[str]:
        """Text of tokens ``lo..hi-1`` (each with the gap before it, except the first)."""
        out = []
        for i in range(lo, hi):
            doc = self.documents[int(self.doc_ids[i])]
            s, e = int(self.offsets[i, 0]), int(self.offsets[i, 1])
            if i > lo and self.doc_ids[i - 1] == self.doc_ids[i]:
                prev_end = int(self.offsets[i - 1, 1])
                if prev_end <= s:
                    s = prev_end
            out.append(doc[s:e])
        return out

    def window_of(self, chunk: int, act: np.ndarray, kind: str, centre: bool = True,
                  decile: int | None = None, threshold: float = 0.0, source: str | None = None) -> Window:
        a, b = int(self.chunk_starts[chunk]), int(self.chunk_stops[chunk])
        lo, hi = self.span(chunk, act, centre and float(np.max(act[a:b])) > threshold)
        return self.window_at(lo, hi, chunk, act, kind, decile, threshold, source)

    def window_at(self, lo: int, hi: int, chunk: int, act: np.ndarray, kind: str, decile: int | None = None,
                  threshold: float = 0.0, source: str | None = None, marks: list[int] | None = None) -> Window:
        """The window of tokens ``lo..hi-1`` with the unit's activations ``act[lo:hi]``."""
        acts = [float(a) for a in act[lo:hi]]
        return Window(lo, self.pieces(lo, hi), [int(t) for t in self.ids[lo:hi]], acts, kind, int(chunk),
                      decile, bool(max(acts, default=0.0) > threshold), source, marks)

    def bag(self, chunks: np.ndarray, buckets: int = 2048) -> np.ndarray:
        """Hashed bag-of-token-ids rows [len(chunks), buckets] (L2-normalised), for similarity."""
        out = np.zeros((len(chunks), buckets), dtype=np.float32)
        for r, c in enumerate(chunks):
            ids = self.ids[self.chunk_starts[c]:self.chunk_stops[c]] % buckets
            np.add.at(out[r], ids, 1.0)
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norm, 1e-12)
