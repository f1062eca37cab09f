"""Pack games into fixed-size training blocks that each start with ';'.

Packing rule (both splits, games in their given order):

1. A block takes whole games while they fit.
2. The space left after its last whole game is filled with the *beginning* of the next game
   (a real prefix, never padding), and that next game then starts the following block in full.
   So every game appears once whole at a block start, every block starts with ';', and no
   character is filler.
3. The last block of a split is filled the same way, wrapping round to the split's first
   game (repeated if it is short).
4. A game longer than a block is cut to one block (counted as ``cut_games``).

This matches the reference lichess blocks (1024 characters, ';' first, games back to back, the
tail cut at the boundary) while never dropping a game.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import BinaryIO, Iterable

import numpy as np

from moelens.data.chess.vocab import encode
from moelens.errors import DataError
from moelens.rundir import atomic_path


class BlockPacker:
    """Streams games into ``fh`` as uint8 blocks of ``block_size`` ids (see module rule)."""

    def __init__(self, fh: BinaryIO, block_size: int):
        self.fh = fh
        self.block_size = block_size
        self.buf = np.empty(block_size, dtype=np.uint8)
        self.fill = 0
        self.first: np.ndarray | None = None
        self.blocks = 0
        self.games = 0
        self.cut_games = 0

    def _flush(self) -> None:
        self.fh.write(self.buf.tobytes())
        self.blocks += 1
        self.fill = 0

    def add(self, ids: np.ndarray) -> None:
        bs = self.block_size
        self.games += 1
        if self.first is None:
            self.first = ids[:bs].copy()
        if self.fill and self.fill + len(ids) > bs:
            room = bs - self.fill
            self.buf[self.fill:] = ids[:room]
            self._flush()
        if len(ids) >= bs:
            self.cut_games += len(ids) > bs
            self.buf[:] = ids[:bs]
            self._flush()
            return
        self.buf[self.fill:self.fill + len(ids)] = ids
        self.fill += len(ids)
        if self.fill == bs:
            self._flush()

    def close(self) -> None:
        """Finish the last block by wrapping round to the split's first game(s)."""
        if self.fill == 0 or self.first is None:
            return
        while self.fill < self.block_size:
            take = min(len(self.first), self.block_size - self.fill)
            self.buf[self.fill:self.fill + take] = self.first[:take]
            self.fill += take
        self._flush()


def count_games(shards: Iterable[Path]) -> int:
    n = 0
    for path in shards:
        with open(path, "rb") as fh:
            n += sum(1 for line in fh if line.strip())
    return n


def write_splits(out: Path, shards: list[Path], seed: int, val_fraction: float, block_size: int,
                 progress) -> dict:
    """Write ``train.bin``, ``val.bin`` and ``games_val.txt`` from game shards (atomically).

    The validation games are ``max(1, round(n * val_fraction))`` game indices drawn with
    ``default_rng(seed)``: the same games and seed always give the same split.
    """
    n = count_games(shards)
    if n < 2:
        raise DataError(f"only {n} valid game(s): need at least 2 (one for validation); generate "
                        "more with --n_games or import more games")
    n_val = min(n - 1, max(1, round(n * val_fraction)))
    is_val = np.zeros(n, dtype=bool)
    is_val[np.random.default_rng(seed).choice(n, n_val, replace=False)] = True
    with contextlib.ExitStack() as stack:
        tmp = {name: stack.enter_context(atomic_path(out / name))
               for name in ("train.bin", "val.bin", "games_val.txt")}
        train_fh = stack.enter_context(open(tmp["train.bin"], "wb"))
        val_fh = stack.enter_context(open(tmp["val.bin"], "wb"))
        games_fh = stack.enter_context(open(tmp["games_val.txt"], "w", encoding="ascii"))
        train, val = BlockPacker(train_fh, block_size), BlockPacker(val_fh, block_size)
        i = 0
        for path in shards:
            with open(path, encoding="ascii") as fh:
                for line in fh:
                    game = line.strip()
                    if not game:
                        continue
                    ids = encode(game)
                    if is_val[i]:
                        val.add(ids)
                        games_fh.write(game + "\n")
                    else:
                        train.add(ids)
                    i += 1
                    progress.update(1)
        train.close()
        val.close()
    return {"n_games": n, "n_train_games": train.games, "n_val_games": val.games,
            "n_train_blocks": train.blocks, "n_val_blocks": val.blocks,
            "cut_games": train.cut_games + val.cut_games}
