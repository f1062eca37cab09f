"""Capture: record what a model's units do on a corpus.

``adapters`` knows where each model family keeps its router, experts, shared experts and dense
MLPs and turns a forward pass into sink callbacks; ``capture`` drives the forward passes over a
corpus and ``store`` writes the records to disk. Only the adapters import model-family code.
"""
