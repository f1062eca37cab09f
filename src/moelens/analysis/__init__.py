"""Analyses that read an activation store and write results (probing, ...).

Nothing here imports a model family's code; analyses see only the store and plain arrays.
"""
