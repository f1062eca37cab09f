"""Analyses that read an activation store (or re-run a model) and write results.

Nothing here imports a model family's code. Most analyses see only the store and plain arrays;
``causal`` and ``specialization`` also reach the model, only through the adapters' intervention
points (``moelens.capture.adapters``), which hold the family knowledge.
"""
