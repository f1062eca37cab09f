"""Capture: record what a model's units do on a corpus.

``adapters`` knows where each model family keeps its router, experts, shared experts and dense
MLPs and turns a forward pass into sink callbacks; ``corpus`` reads documents lazily, ``windows``
cuts them into windows and shards as a stream, ``capture`` drives the forward passes over the
shards, ``store_job`` claims, resumes and finalises the store directory (the records are written
by ``moelens.store.writer``) and ``job`` puts these together for ``moelens capture``. Only the
adapters import model-family code.
"""
