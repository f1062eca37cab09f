"""Chess notation concepts and the one-token-per-character chess vocabulary."""

from __future__ import annotations

import numpy as np

from moelens.data.concepts import get_concept, list_concepts, token_labels
from moelens.data.concepts.chess import iter_moves

GAME = ";1.e4 e5 2.Nf3 Nc6 3.Bb5 a6 4.Bxc6+ dxc6 5.O-O f6 6.e8=Q# ;1.d4"

EXPECTED = {
    "move_number": ["1", "2", "3", "4", "5", "6", "1"],
    "move_dot": ["."] * 7,
    "capture": ["x", "x"],
    "check": ["+"],
    "mate": ["#"],
    "castling": ["O-O"],
    "promotion": ["=Q"],
    "piece_letter": ["N", "N", "B", "B", "Q"],
    "file_char": list("eefcbacdcfed"),
    "rank_char": list("45365666684"),
    "white_move": ["e4", "Nf3", "Bb5", "Bxc6+", "O-O", "e8=Q#", "d4"],
    "black_move": ["e5", "Nc6", "a6", "dxc6", "f6"],
}


def test_chess_concepts_hand_checked():
    assert set(EXPECTED) == {c.name for c in list_concepts("chess")}
    for name, want in EXPECTED.items():
        got = [GAME[s:e] for s, e in get_concept(name).label(GAME)]
        assert got == want, name


def test_iter_moves_numbers_and_sides():
    plies = iter_moves(";1.e4 e5 2.Nf3")
    assert [(p.move_number, p.white, p.san) for p in plies] == [
        (1, True, "e4"), (1, False, "e5"), (2, True, "Nf3")]


def test_char_vocabulary_offsets_one_token_per_character():
    text = ";1.e4 e5 2.Nf3"
    offsets = np.stack([np.arange(len(text)), np.arange(len(text)) + 1], axis=1)
    labels = token_labels(get_concept("white_move"), text, offsets)
    assert "".join(c for c, y in zip(text, labels) if y) == "e4Nf3"
    labels = token_labels(get_concept("move_dot"), text, offsets)
    assert np.flatnonzero(labels).tolist() == [2, 10]
