"""Scorers, one per file, each asking a judge (:mod:`.judges`) and computing :mod:`.metrics`."""
