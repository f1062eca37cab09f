"""Library-level helpers: examples of a store's units, drawn as ``moelens interpret`` draws them."""

from __future__ import annotations

import asyncio

from moelens.analysis.autointerp.corpus import Corpus
from moelens.analysis.autointerp.examples import ExampleSettings, Sampler, pools
from moelens.analysis.autointerp.units import Unit, read_activations
from moelens.store import ActivationStore


def unit_examples(store_path, units: list[Unit], pool_units: list[Unit] | None = None, **settings):
    store = ActivationStore.open(store_path)
    s = ExampleSettings(**settings)
    corpus = Corpus.from_store(store, s.window)
    others = pools(corpus, read_activations(store, pool_units or units), s.pool_size, s.threshold)
    sampler = Sampler(corpus, s, others)
    return {u: sampler.examples(u, a) for u, a in read_activations(store, units)}


def run(coro):
    return asyncio.run(coro)
