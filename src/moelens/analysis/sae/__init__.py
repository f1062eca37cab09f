"""Sparse autoencoders on a store's dense spaces, saved as the store's derived unit space ``sae``.

``moelens sae train --store S --layer L --space resid`` (:mod:`.command`) trains a TopK SAE
(EleutherAI sparsify's ``SparseCoder``; :mod:`.models`) or a ReLU + L1 SAE on the store's
activations, read a chunk of tokens at a time (:mod:`.data`), with checkpoints that resume a
killed run exactly (:mod:`.loop`); it reports held-out explained variance, L0 and dead latents
(:mod:`.evaluate`) and saves the SAE under ``S/derived/L<layer>/<name>/`` (:mod:`.train`).
From then on ``ActivationStore.open(S)`` lists the latents as a unit space (``sae`` by default)
that every analysis reads with ``dense``, ``width`` and ``unit_stats`` (see
:mod:`moelens.store.derived`).

Library use: ``train_sae(SaeTrainConfig(store=..., layer=..., ...)) -> SaeResult``.
"""

from moelens.analysis.sae.command import SaeTrainConfig


def train_sae(cfg: SaeTrainConfig):
    """Train and save the SAE ``cfg`` describes; see :func:`moelens.analysis.sae.train.train_sae`."""
    from moelens.analysis.sae.train import train_sae as _train

    return _train(cfg)


__all__ = ["SaeTrainConfig", "train_sae"]
