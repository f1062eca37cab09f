"""The block packing rule: ';' first, whole games, tails filled with the next game's prefix."""

from __future__ import annotations

import io

import numpy as np

from moelens.data.chess import CHESS_VOCAB, decode, encode
from moelens.data.chess.blocks import BlockPacker


def _pack(games: list[str], bs: int) -> tuple[list[str], BlockPacker]:
    fh = io.BytesIO()
    packer = BlockPacker(fh, bs)
    for g in games:
        packer.add(encode(g))
    packer.close()
    data = np.frombuffer(fh.getvalue(), dtype=np.uint8)
    assert len(data) % bs == 0
    return [decode(data[i:i + bs]) for i in range(0, len(data), bs)], packer


def test_packing_rule():
    a, b, c = ";1.e4 e5", ";1.d4 d5 2.c4", ";1.c4"
    blocks, p = _pack([a, b, c], 20)
    # a fits whole, the tail takes b's prefix; b starts the next block whole, then c, then a wraps
    assert blocks[0] == a + b[:12]
    assert blocks[1] == b + c + a[:2]
    assert p.blocks == 2 and p.games == 3 and p.cut_games == 0


def test_long_game_is_cut_to_one_block_and_exact_fit_needs_no_filler():
    long = ";1.e4 e5 2.Nf3 Nc6 3.Bb5 a6"
    blocks, p = _pack([long, ";1.d4 d5"], 10)
    assert blocks[0] == long[:10] and blocks[1].startswith(";1.d4 d5") and p.cut_games == 1
    blocks, _ = _pack([";1.e4", ";1.d4"], 10)
    assert blocks == [";1.e4;1.d4"]


def test_every_block_starts_with_game_start_and_uses_the_vocab():
    rng = np.random.default_rng(0)
    games = [";1.e4 e5" + " 2.Nf3 Nc6" * int(rng.integers(0, 12)) for _ in range(50)]
    blocks, _ = _pack(games, 64)
    assert blocks and all(b.startswith(";") for b in blocks)
    assert set("".join(blocks)) <= set(CHESS_VOCAB)
