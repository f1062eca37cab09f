"""BSP functions on hand-checked positions (python-chess boards from FEN or move sequences)."""

from __future__ import annotations

import chess
import numpy as np

from moelens.data.chess import bsp
from moelens.data.chess.bsp import BSP_FUNCTIONS


def moves(*sans: str) -> chess.Board:
    board = chess.Board()
    for san in sans:
        board.push_san(san)
    return board


def flag(name: str, board: chess.Board) -> int:
    out = BSP_FUNCTIONS[name](board)
    assert out.shape == (1, 1, 1)
    return int(out[0, 0, 0])


def test_registry_shapes_and_class_counts():
    assert len(BSP_FUNCTIONS) == 23
    board = moves("e4", "e5", "Nf3")
    for name, f in BSP_FUNCTIONS.items():
        out = f(board)
        assert out.shape == f.shape and out.dtype == np.uint8, name
        assert set(np.unique(out)) <= {0, 1}, name
        assert f.n_cells == out.size
        # masked classes are always zero
        assert not out[:, :, ~f.class_mask].any(), name
    assert BSP_FUNCTIONS["piece"].n_counted == 64 * 13
    assert BSP_FUNCTIONS["piece_masked_blank"].n_counted == 64 * 12
    assert BSP_FUNCTIONS["piece_masked_blank_and_initial"].n_counted == 64 * 12
    assert BSP_FUNCTIONS["piece_color"].n_counted == 64 * 3
    assert BSP_FUNCTIONS["threat"].n_counted == 64
    assert BSP_FUNCTIONS["mate_threat"].n_counted == 1
    assert sum(f.shape == (1, 1, 1) for f in BSP_FUNCTIONS.values()) == 16


def test_piece_one_hot_and_orientation():
    board = chess.Board()
    p = bsp.piece(board)
    assert (p.sum(axis=2) == 1).all()
    assert p[0, 4, bsp.PIECE_CLASSES.index("K")] == 1      # e1: row 0 (rank 1), col 4 (file e)
    assert p[7, 3, bsp.PIECE_CLASSES.index("q")] == 1      # d8
    assert p[3, 4, bsp.BLANK] == 1                          # e4 empty
    c = bsp.piece_color(board)
    assert c[:, :, 0].sum() == 16 and c[:, :, 1].sum() == 16 and c[:, :, 2].sum() == 32


def test_masked_and_initial_start_and_after_e4():
    assert not bsp.piece_masked_blank_and_initial(chess.Board()).any()
    out = bsp.piece_masked_blank_and_initial(moves("e4"))
    assert out.sum() == 1
    assert out[3, 4, bsp.PIECE_CLASSES.index("P")] == 1
    # a piece that returns to its start square is zeroed again
    back = bsp.piece_masked_blank_and_initial(moves("Nf3", "Nf6", "Ng1", "Ng8"))
    assert not back.any()
    assert bsp.piece_masked_blank(chess.Board()).sum() == 32


def test_castling_rights_after_king_and_rook_moves():
    start = chess.Board()
    assert [flag(n, start) for n in ("castling_rights", "queenside_castling_rights",
                                     "kingside_castling_rights")] == [1, 1, 1]
    rook = moves("h4", "h5", "Rh2", "Rh7")
    assert [flag(n, rook) for n in ("castling_rights", "queenside_castling_rights",
                                    "kingside_castling_rights")] == [1, 1, 0]
    king = moves("e4", "e5", "Ke2", "Ke7", "Ke1", "Ke8")
    assert [flag(n, king) for n in ("castling_rights", "queenside_castling_rights",
                                    "kingside_castling_rights")] == [0, 0, 0]


def test_en_passant_legal_and_pinned():
    legal = moves("e4", "a6", "e5", "d5")
    assert flag("legal_en_passant", legal) == 1
    assert flag("legal_en_passant", moves("e4", "a6", "e5", "a5")) == 0
    # exd6 e.p. would empty the fifth rank between the king on a5 and the rook on h5
    pinned = chess.Board("4k3/8/8/K2pP2r/8/8/8/8 w - d6 0 1")
    assert chess.Move.from_uci("e5d6") in set(pinned.pseudo_legal_moves)
    assert flag("legal_en_passant", pinned) == 0


def test_pin_and_check():
    assert flag("pin", chess.Board("4k3/4r3/8/8/8/8/4N3/4K3 w - - 0 1")) == 1
    assert flag("pin", chess.Board("4k3/3r4/8/8/8/8/4N3/4K3 w - - 0 1")) == 0
    assert flag("check", chess.Board("4k3/8/8/8/8/8/8/r3K3 w - - 0 1")) == 1
    assert flag("check", chess.Board()) == 0


def test_knight_fork_and_pinned_knight():
    fork = chess.Board("r1r4k/2N5/4q3/8/8/8/8/3K4 w - - 0 1")   # Nc7 hits Ra8 and Qe6
    assert flag("specific_fork", fork) == 1 and flag("any_fork", fork) == 1
    pinned = chess.Board("r1r4k/2N5/4q3/8/8/8/8/2K5 w - - 0 1")  # Rc8 pins Nc7 to Kc1
    assert flag("pin", pinned) == 1
    assert flag("specific_fork", pinned) == 0 and flag("any_fork", pinned) == 0
    # a knight hitting a rook and a bishop is a fork but not the R/Q/K knight fork
    minor = chess.Board("r6k/2N5/4b3/8/8/8/8/3K4 w - - 0 1")
    assert flag("specific_fork", minor) == 0 and flag("any_fork", minor) == 1


def test_mate_threat_back_rank():
    threatened = chess.Board("r5k1/5ppp/8/8/8/8/5PPP/6K1 w - - 0 1")   # ...Ra1# is threatened
    assert flag("mate_threat", threatened) == 1
    luft = chess.Board("r5k1/5ppp/8/8/8/7P/5PP1/6K1 w - - 0 1")        # Kh2 escapes
    assert flag("mate_threat", luft) == 0
    assert flag("mate_threat", chess.Board()) == 0
    # in check: defined as no threat
    assert flag("mate_threat", chess.Board("r5k1/5ppp/8/8/8/8/5PPP/r5K1 w - - 0 1")) == 0


def test_ambiguous_moves_two_knights():
    two = chess.Board("4k3/8/8/8/8/8/8/1N2KN2 w - - 0 1")
    assert "Nbd2" in {two.san(m) for m in two.legal_moves}
    assert flag("ambiguous_moves", two) == 1
    assert flag("ambiguous_moves", chess.Board("4k3/8/8/8/8/8/8/1N2K3 w - - 0 1")) == 0
    assert flag("ambiguous_moves", chess.Board()) == 0


def test_can_claim_draw_threefold():
    loop = ["Nf3", "Nf6", "Ng1", "Ng8"]
    assert flag("can_claim_draw", moves(*loop)) == 0
    assert flag("can_claim_draw", moves(*loop, *loop)) == 1   # start position a third time
    # Black claims by announcing ...Ng8, the start position's third occurrence: the shortcut's
    # boundary (halfmove clock 7)
    announce = moves(*loop, "Nf3", "Nf6", "Ng1")
    assert announce.halfmove_clock == 7 and announce.can_claim_draw()
    assert flag("can_claim_draw", announce) == 1
    # the same position without its move stack has no history to repeat
    assert flag("can_claim_draw", chess.Board(moves(*loop, *loop).fen())) == 0


def test_bishop_pair_rooks_queen_flags():
    assert flag("bishop_pair", chess.Board()) == 1
    assert flag("bishop_pair", chess.Board("4k3/8/8/8/8/B7/8/2B1K3 w - - 0 1")) == 0  # both dark
    assert flag("connected_rooks", chess.Board("4k3/8/8/8/8/8/8/RR2K3 w - - 0 1")) == 1
    assert flag("connected_rooks", chess.Board("4k3/8/8/8/8/8/8/R3K2R w KQ - 0 1")) == 0
    assert flag("connected_rooks", chess.Board("4k3/8/8/8/R7/8/8/R3K3 w - - 0 1")) == 1
    assert flag("has_queen", chess.Board()) == 1
    assert flag("has_queen", chess.Board("4k3/8/8/8/8/8/8/4K3 w - - 0 1")) == 0
    hang = moves("e4", "d5", "exd5", "Qxd5", "Nc3")   # Black to move: Nc3 attacks the queen
    assert flag("can_capture_queen", hang) == 0      # Black's own queen is not a target
    assert flag("can_capture_queen", moves("e4", "d5", "exd5", "Qxd5")) == 0
    assert flag("can_capture_queen", chess.Board("4k3/8/8/3q4/8/2N5/8/4K3 w - - 0 1")) == 1
    assert flag("can_capture_queen", chess.Board("4k3/8/8/3q4/8/3N4/8/4K3 w - - 0 1")) == 0
    assert flag("can_check_next", moves("e4", "f6")) == 1   # Qh5+
    assert flag("can_check_next", chess.Board()) == 0


def test_square_functions():
    board = moves("e4", "e5")
    # threat: squares Black attacks (White to move)
    t = bsp.threat(board)[:, :, 0]
    for sq in chess.SQUARES:
        assert t[chess.square_rank(sq), chess.square_file(sq)] == board.is_attacked_by(
            chess.BLACK, sq)
    lm = bsp.legal_moves(board)[:, :, 0]
    assert lm[chess.square_rank(chess.E2), chess.square_file(chess.E2)] == 1   # Ke2, Qe2, ...
    assert lm[chess.square_rank(chess.E5), chess.square_file(chess.E5)] == 0
    pinned = chess.Board("4k3/4r3/8/8/8/8/4N3/4K3 w - - 0 1")
    assert bsp.pseudo_legal_moves(pinned).sum() > bsp.legal_moves(pinned).sum()


def test_against_python_chess_on_random_games():
    """Flags cross-checked against an independent python-chess route on random positions."""
    import random
    rng = random.Random(1)
    for _ in range(40):
        board = chess.Board()
        for _ in range(rng.randint(0, 60)):
            ms = list(board.legal_moves)
            if not ms:
                break
            board.push(rng.choice(ms))
        sans = [board.san(m) for m in board.legal_moves]
        disamb = any(s[0] in "NBRQ" and len(s.replace("x", "").rstrip("+#")) > 3 for s in sans)
        assert flag("ambiguous_moves", board) == disamb, board.fen()
        assert flag("can_check_next", board) == any(s.endswith(("+", "#")) for s in sans)
        assert flag("check", board) == board.is_check()
        assert flag("can_claim_draw", board) == board.can_claim_draw()
        attacked = [board.is_attacked_by(not board.turn, sq) for sq in chess.SQUARES]
        assert bsp.threat(board).reshape(-1).tolist() == attacked
