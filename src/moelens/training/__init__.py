"""The training loop of ``moelens train`` and its parts, one idea per module.

- :mod:`backend`    the only links to the model and data subsystems (injectable)
- :mod:`sampler`    training/validation windows as a pure function of (seed, step)
- :mod:`schedule`   warmup + cosine learning rate
- :mod:`optim`      AdamW parameter groups (no decay on norms, biases, embeddings)
- :mod:`lm`         loss of a batch, autocast, validation loss
- :mod:`scoring`    loss and perplexity of a saved model on a token directory (``moelens eval``)
- :mod:`checkpoint` atomic, verifiable checkpoints and exact resume state
- :mod:`ddp`        torchrun process groups and collectives
- :mod:`metrics`    metrics.jsonl and MoE layer statistics
- :mod:`stage`      run-directory decisions (skip, resume, refuse) and the final model
- :mod:`loop`       the loop that ties them together, returning what it did (:class:`loop.Outcome`)
- :mod:`command`, :mod:`evaluate`  the typed configs and thin entry points of ``moelens train``
  and ``moelens eval``
"""
