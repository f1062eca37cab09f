"""The chess vocabulary, game strings, replay validation and the chess tokenizers."""

from __future__ import annotations

import chess
import numpy as np
import pytest

from moelens.data.chess import (
    CHESS_VOCAB,
    ChessTokenizer,
    IllegalGame,
    chess_tokenizer,
    decode,
    encode,
    game_string,
    replay,
    trim_partial,
)
from moelens.errors import DataError

GAME = ";1.e4 e5 2.Nf3 Nc6 3.Bb5 a6 4.Ba4 Nf6 5.O-O Be7"


def test_vocab_is_the_reference_order():
    assert CHESS_VOCAB == "".join(sorted(set(" #+-.0123456789;=BKNOQRabcdefghx")))
    assert len(CHESS_VOCAB) == 32 and CHESS_VOCAB.index(";") == 15


def test_encode_decode_round_trip_and_rejects_outside_chars():
    ids = encode(GAME)
    assert ids.dtype == np.uint8 and ids[0] == 15 and decode(ids) == GAME
    with pytest.raises(DataError, match="outside"):
        encode(";1.e4 e5 *")
    with pytest.raises(DataError):
        encode(";1.é4")
    with pytest.raises(DataError):
        decode([32])


def test_san_characters_fit_the_vocab():
    # promotion with capture and mate, castling both sides, check
    board = chess.Board("4k3/1P6/8/8/8/8/8/R3K2R w KQ - 0 1")
    sans = [board.san(m) for m in board.legal_moves]
    assert any("=" in s for s in sans) and "O-O" in sans and "O-O-O" in sans
    assert all(set(s) <= set(CHESS_VOCAB) for s in sans)


def test_replay_accepts_canonical_games_and_rejects_bad_ones():
    assert replay(GAME)[-1] == "Be7"
    assert game_string(replay(GAME)) == GAME
    mate = ";1.f3 e5 2.g4 Qh4#"
    assert replay(mate)[-1] == "Qh4#"
    for bad in [";1.e4 e5 2.Ke3", ";1.e4  e5", ";1. e4", "1.e4", ";1.e4 e5 3.Nf3",
                ";1.f3 e5 2.g4 Qh4# 3.a3", ";1.e4 e5 2.Nf3 Nc6 3.Bb5 a6 4.Bxc6 dxc6 5.O-O Bg4+"]:
        with pytest.raises(IllegalGame):
            replay(bad)


def test_cut_off_last_token_is_marked_partial_and_trimmed():
    for cut in [";1.e4 e5 2.Nf", ";1.e4 e5 2.", ";1.e4 e5 2", ";1.f3 e5 2.g4 Qh4"]:
        with pytest.raises(IllegalGame) as exc:
            replay(cut)
        assert exc.value.partial, cut
    assert trim_partial(";1.e4 e5 2.Nf") == ";1.e4 e5"
    with pytest.raises(IllegalGame) as exc:
        replay(";1.e4 e5 2.Ke3")
    assert not exc.value.partial


def test_hf_chess_tokenizer_ids_offsets_and_padding():
    tok = chess_tokenizer()
    texts = [GAME, ";1.d4"]
    enc = tok(texts, padding=True, return_offsets_mapping=True)
    assert enc["input_ids"][0] == encode(GAME).tolist()
    assert enc["offset_mapping"][0] == [(i, i + 1) for i in range(len(GAME))]
    assert enc["attention_mask"][1] == [1] * 5 + [0] * (len(GAME) - 5)
    assert enc["input_ids"][1][5:] == [tok.pad_token_id] * (len(GAME) - 5)
    assert tok.pad_token == ";" and len(tok) == 32
    assert tok.decode(enc["input_ids"][0]) == GAME


def test_plain_chess_tokenizer():
    tok = ChessTokenizer()
    assert tok.decode(tok.encode(GAME)) == GAME and len(tok) == 32
    assert tok.encode(GAME) == tok.hf()(GAME)["input_ids"] == tok(GAME)["input_ids"]
    enc = tok([GAME, ";1.d4"], padding=True, return_offsets_mapping=True)
    assert enc["offset_mapping"][1][:5] == [(i, i + 1) for i in range(5)]
