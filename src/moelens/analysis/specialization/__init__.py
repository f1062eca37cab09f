"""Specialization and routing analytics of a store.

- :mod:`.kmeans`: spherical k-means of the unembedding (token families at several K);
- :mod:`.jsd`: JSD in bits with the small-sample null correction;
- :mod:`.views`: input (routed tokens) and output (logit-lens tokens) views per expert;
- :mod:`.routing_stats`: load, entropies, weight mass, co-activation, layer-to-layer
  transitions, vocabulary and domain specialization, dead and always-on experts;
- :mod:`.run`: ``moelens specialize``.

The output view and the clustering read the model's unembedding and final norm through the
adapters' intervention points (``moelens.capture.adapters``; see docs/decisions.md).
"""
