"""Test doubles: a tiny in-memory activation store and concept registry.

``FakeStore`` implements the reader methods documented in docs/interfaces.md ("Activation
store") that probing uses, with a planted signal: in layer 0, neuron 3 of expert 1 is
``5 * [token contains a digit] + noise`` on the tokens routed to it. ``FakeRegistry`` mimics the
concept registry's documented functions for two concepts (``digit``, ``capital``) and a
duplicate (``digits``, marked ``duplicate_of="digit"``).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from moelens.errors import ConfigError, StoreError

PLANTED = (0, 1, 3)  # layer, expert, neuron


class FakeStore:
    def __init__(self, seed: int = 0, n_docs: int = 40, words: int = 100, with_resid: bool = True,
                 dense: bool = False):
        rng = np.random.default_rng(seed)
        docs, doc_ids, offsets = [], [], []
        for d in range(n_docs):
            parts, pos = [], 0
            for _ in range(words):
                r = rng.random()
                w = (str(rng.integers(10, 999)) if r < 0.3 else
                     ("Abc" if r < 0.5 else "xyz"))
                offsets.append((pos, pos + len(w)))
                doc_ids.append(d)
                parts.append(w)
                pos += len(w) + 1
            docs.append(" ".join(parts))
        self._docs = docs
        self._doc_ids = np.array(doc_ids, dtype=np.int64)
        self._offsets = np.array(offsets, dtype=np.int64)
        n = self._doc_ids.size
        self.n_tokens = n
        self.layers = [0, 1]
        self.manifest = {"model": {"id": "fake-moe"}}
        digit = np.array([any(ch.isdigit() for ch in docs[d][a:b])
                          for d, (a, b) in zip(doc_ids, offsets)])
        self.E, self.K, self.D = 4, 2, 16
        self._spaces = {0: ["expert", "shared", "resid"] + (["ffn"] if False else []),
                        1: ["expert", "resid"]}
        if dense:  # a dense model: ffn units only, neuron 0 weakly tracks digits
            self._spaces = {l: ["ffn"] for l in self.layers}
            self.manifest = {"model": {"id": "fake-dense"}}
        if not with_resid:
            self._spaces = {l: [s for s in v if s != "resid"] for l, v in self._spaces.items()}
        self._routing, self._acts, self._dense = {}, {}, {}
        for l in self.layers:
            ids = np.stack([rng.choice(self.E, self.K, replace=False) for _ in range(n)])
            w = rng.random((n, self.K)).astype(np.float32)
            self._routing[l] = (ids, w / w.sum(1, keepdims=True))
            acts = rng.normal(size=(n, self.E, self.D)).astype(np.float32)
            if l == PLANTED[0]:
                acts[:, PLANTED[1], PLANTED[2]] += 5.0 * digit
            self._acts[l] = acts
            self._dense[(l, "shared")] = rng.normal(size=(n, 8)).astype(np.float32)
            self._dense[(l, "ffn")] = (rng.normal(size=(n, 20)) + 1.0 * np.outer(digit, np.eye(20)[0])).astype(np.float32)
            self._dense[(l, "resid")] = (rng.normal(size=(n, 12)) + 0.3 * digit[:, None]).astype(np.float32)

    # documented reader methods
    def spaces(self, layer):
        return list(self._spaces[layer])

    def width(self, layer, space):
        return {"expert": self.D, "shared": 8, "resid": 12, "ffn": 20}[space]

    def num_experts(self, layer):
        return self.E

    def top_k(self, layer):
        return self.K

    def doc_ids(self):
        return self._doc_ids

    def offsets(self):
        return self._offsets

    def documents(self):
        return list(self._docs)

    def routing(self, layer):
        return self._routing[layer]

    def expert(self, layer, expert, semantics="routed", space="expert", tokens=None):
        sel = np.arange(self.n_tokens) if tokens is None else np.asarray(tokens, dtype=np.int64)
        if space == "shared":
            return sel, self.dense(layer, "shared", sel)
        ids, w = self._routing[layer]
        routed = (ids[sel] == expert).any(1)
        if semantics == "routed":
            keep = sel[routed]
            return keep, self._acts[layer][keep, expert]
        acts = self._acts[layer][sel, expert] * routed[:, None]
        if semantics == "gated":
            acts = acts * (w[sel] * (ids[sel] == expert)).sum(1)[:, None]
        return sel, acts

    def dense(self, layer, space, tokens=None):
        if space not in self._spaces[layer]:
            raise StoreError(f"space {space} not captured at layer {layer}")
        sel = np.arange(self.n_tokens) if tokens is None else np.asarray(tokens, dtype=np.int64)
        return self._dense[(layer, space)][sel]


class FakeRegistry:
    CONCEPTS = {"digit": "text", "capital": "text"}
    DUPLICATES = {"digits": "digit"}  # labels what "digit" labels; not listed by "all"

    def groups(self):
        return sorted(set(self.CONCEPTS.values()))

    def get_concept(self, name, variant="fixed"):
        if name in self.DUPLICATES:
            return SimpleNamespace(name=name, group="text", duplicate_of=self.DUPLICATES[name])
        if name not in self.CONCEPTS:
            raise ConfigError(f"unknown concept {name!r}; see the concept list")
        return SimpleNamespace(name=name, group=self.CONCEPTS[name], duplicate_of=None)

    def canonical_concepts(self, concepts):
        names = {c.name for c in concepts}
        return [c for c in concepts if c.duplicate_of is None or c.duplicate_of not in names]

    def list_concepts(self, group=None, variant="fixed"):
        return [self.get_concept(n) for n, g in self.CONCEPTS.items() if group in (None, g)]

    def corpus_token_labels(self, concept, documents, doc_ids, offsets):
        labels = np.array([any((str.isdigit if concept.name in ("digit", "digits") else str.isupper)(ch)
                                for ch in documents[d][a:b]) for d, (a, b) in zip(doc_ids, offsets)],
                          dtype=bool)
        return labels, np.asarray(offsets)[:, 1] > np.asarray(offsets)[:, 0]

    def sample_examples(self, labels, eligible, budget, seed, doc_ids=None):
        rng = np.random.default_rng(seed)
        pos = np.flatnonzero(labels & eligible)
        neg = np.flatnonzero(~labels & eligible)
        m = min(budget // 2, pos.size, neg.size)
        return np.sort(rng.choice(pos, m, replace=False)), np.sort(rng.choice(neg, m, replace=False))
