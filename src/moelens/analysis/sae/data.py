"""Training batches for an SAE, read from the store a chunk at a time (the held-out split is
drawn in :mod:`.plan`).

Batch ``b`` of epoch ``e`` is a fixed function of the seed: the training tokens are permuted by
``default_rng([seed, 1, e])`` and cut into consecutive batches (a last partial batch is dropped).
So the batch at any step can be recomputed after a restart, and a resumed run sees exactly the
batches an uninterrupted one would. Reading is done a chunk of batches at a time (the chunk's
tokens sorted, so each shard is read front to back), which bounds memory by ``chunk_tokens``
rows of the source space whatever the store's size.
"""

from __future__ import annotations

import numpy as np
import torch

from moelens.errors import ConfigError


class Batches:
    """``batch(step)``: float32 [batch_size, d_in] source activations of one training step."""

    def __init__(self, store, layer: int, space: str, train: np.ndarray, batch_size: int,
                 chunk_tokens: int, seed: int):
        if batch_size > train.size:
            raise ConfigError(f"batch_size {batch_size} is larger than the {train.size} training "
                              "tokens of the store; lower --batch_size or capture more tokens")
        self.store, self.layer, self.space = store, layer, space
        self.train, self.batch_size, self.seed = train, batch_size, seed
        self.per_epoch = train.size // batch_size
        self.per_chunk = max(1, min(chunk_tokens // batch_size, self.per_epoch))
        self._key: tuple[int, int] | None = None
        self._rows: np.ndarray | None = None

    def tokens(self, step: int) -> np.ndarray:
        """Store token indices of the batch at ``step``."""
        epoch, b = divmod(step, self.per_epoch)
        order = self._order(epoch)
        return order[b * self.batch_size:(b + 1) * self.batch_size]

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, 1, epoch]).permutation(self.train)

    def chunk_rows(self, step: int) -> np.ndarray:
        """float32 [rows, d_in] of the chunk of batches holding ``step`` (read once, then kept)."""
        epoch, b = divmod(step, self.per_epoch)
        chunk = b // self.per_chunk
        if self._key != (epoch, chunk):
            order = self._order(epoch)
            first = chunk * self.per_chunk * self.batch_size
            last = min((chunk + 1) * self.per_chunk, self.per_epoch) * self.batch_size
            toks = order[first:last]
            by_position = np.argsort(toks, kind="stable")
            rows = np.empty((toks.size, self.store.width(self.layer, self.space)), dtype=np.float32)
            rows[by_position] = self.store.dense(self.layer, self.space, toks[by_position])
            self._key, self._rows = (epoch, chunk), rows
        return self._rows

    def batch(self, step: int) -> torch.Tensor:
        rows = self.chunk_rows(step)
        b = step % self.per_epoch
        a = (b - (b // self.per_chunk) * self.per_chunk) * self.batch_size
        return torch.from_numpy(rows[a:a + self.batch_size])
