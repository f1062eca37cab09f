"""k-sparse probing of units (experts, shared experts, dense FFNs) against token concepts.

The numerical core (:mod:`.core`, :mod:`.fit_fast`, :mod:`.fit_reference`) works on plain arrays:
one unit's activations ``X [n, D]`` and binary labels ``y [n]`` go in, precision / recall / F1 for
every k come out, many units at once. Only :mod:`.dataset` knows about the activation store and
the concept registry, :mod:`.run` probes a store start to finish (with :mod:`.runs` for a run's
identity on disk and :mod:`.baselines` for the dense-store baseline), and only
:mod:`moelens.analysis.probing.command` knows about the command line.

Choices, in one place:

- k must be a power of two in [1, 64] (the paper's grid; anything else is a ConfigError). A k
  larger than a unit's width is skipped: its rows say ``k exceeds width`` with NaN metrics.
- Units with fewer than 50 positives or 50 negatives get ``not enough samples`` rows (NaN).
- Two fitters of the same objective (sklearn's L2 logistic loss, C=1, balanced class weights,
  unpenalised intercept, raw features): ``newton`` (default, exact optimum, batched in torch)
  and ``saga`` (the paper's protocol, 500 iterations; fits that stopped short of the optimum are
  flagged and counted).
- Validation control: the 25% held-out split is halved (stratified) into val and test; units are
  chosen on val and reported on test (:mod:`.controls`). One fit per (unit, k) serves both.
- Baselines and nulls are described in :mod:`.dataset`; aggregates in :mod:`.controls`.
- Headlines (stdout, summary.json, figures) lead with the validation-selected test F1 and show
  the paper's biased best-unit number and the baselines beside it (:mod:`.headline`).
- Duplicate concepts (the registry's ``duplicate_of``) are counted once in every average;
  ``--compare`` averages every run over the concepts all runs have (:mod:`.compare`).
- A fit is converged when the relative gradient at its stopping point is small
  (:mod:`.optimality`), for both fitters.
"""

from moelens.analysis.probing.core import KS, Prepared, prepare, probe_units

__all__ = ["KS", "Prepared", "prepare", "probe_units"]
