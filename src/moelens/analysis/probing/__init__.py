"""k-sparse probing of units (experts, shared experts, dense FFNs) against token concepts.

The numerical core (:mod:`.core`, :mod:`.fit_fast`, :mod:`.fit_reference`) works on plain arrays:
one unit's activations ``X [n, D]`` and binary labels ``y [n]`` go in, precision / recall / F1 for
every k come out, many units at once. Only :mod:`.dataset` knows about the activation store and
the concept registry, and only :mod:`moelens.analysis.probe_command` knows about the command line.
"""

from moelens.analysis.probing.core import KS, Prepared, prepare, probe_units

__all__ = ["KS", "Prepared", "prepare", "probe_units"]
