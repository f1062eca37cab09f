"""Causal expert interventions: edit routing on any adapted model and measure what changes.

- :mod:`.interventions`: :class:`Intervention` and the :func:`intervene` context manager;
- :mod:`.effects`: Δ log p(target), Δ cross-entropy, KL, with the baseline in the same batch;
- :mod:`.sweep`: batched single-expert ablation sweeps over (layer, expert) cells;
- :mod:`.knowledge`: knowledge control (ablate a domain's top experts, with a random control);
- :mod:`.trigger`: the trigger → target test with direct logit attribution.

Interventions go through the adapters' intervention points (``moelens.capture.adapters``): the
one part of capture an analysis may import (docs/decisions.md).
"""

from moelens.analysis.causal.effects import Effects, measure  # noqa: F401
from moelens.analysis.causal.interventions import KINDS, Intervention, Session, intervene  # noqa: F401
