"""Board-state properties (BSPs) of chess positions, after Karvonen et al. 2024.

A BSP function maps a ``chess.Board`` (in the metrics: the position just before White's move) to
a binary uint8 array of shape (rows, cols, classes); every (row, col, class) cell is one property
g that a hidden unit may encode. Square functions are 8×8 with row = rank index (0 = rank 1) and
col = file index (0 = file a), i.e. ``square = 8 * row + col`` as in python-chess. Flags are
1×1×1. Unless a docstring says "absolute colours", a function takes the perspective of the side
to move (``board.turn``), which at the scored positions is White.

:data:`BSP_FUNCTIONS` lists the 23 default functions in order; each entry carries its shape and
a class mask (which classes count, so ``|G|`` can exclude masked classes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import chess
import numpy as np

from moelens.data.chess.players import mate_in_one

PIECE_CLASSES = ("P", "N", "B", "R", "Q", "K", "p", "n", "b", "r", "q", "k", "blank")
"""Classes of :func:`piece` in order: White P N B R Q K, Black p n b r q k, empty square."""

BLANK = 12
"""Index of the blank (empty square) class of :func:`piece`."""

COLOR_CLASSES = ("white", "black", "blank")
"""Classes of :func:`piece_color` in order."""

_START = chess.Board()
_BIT_INDEX = np.arange(64, dtype=np.uint64)


def mask_to_grid(mask: int) -> np.ndarray:
    """An 8×8 uint8 grid (row = rank, col = file) from a python-chess square bitmask."""
    bits = (np.uint64(mask) >> _BIT_INDEX) & np.uint64(1)
    return bits.astype(np.uint8).reshape(8, 8)


def _flag(value: bool) -> np.ndarray:
    return np.full((1, 1, 1), bool(value), dtype=np.uint8)


def _square_fn(mask: int) -> np.ndarray:
    return mask_to_grid(mask)[:, :, None]


# ---- piece states (absolute colours) -------------------------------------------------------

def piece(board: chess.Board) -> np.ndarray:
    """8×8×13 one-hot of the piece on each square (absolute colours; see PIECE_CLASSES)."""
    out = np.zeros((8, 8, 13), dtype=np.uint8)
    occupied = 0
    for ci, color in enumerate((chess.WHITE, chess.BLACK)):
        for pi, ptype in enumerate(chess.PIECE_TYPES):
            m = board.pieces_mask(ptype, color)
            occupied |= m
            out[:, :, 6 * ci + pi] = mask_to_grid(m)
    out[:, :, BLANK] = mask_to_grid(~occupied & chess.BB_ALL)
    return out


def piece_masked_blank(board: chess.Board) -> np.ndarray:
    """:func:`piece` with the blank class masked (its cells are zero and do not count in |G|).

    Absolute colours. Empty squares are half the board or more, so without the mask a unit that
    fires on emptiness would dominate the function's coverage."""
    out = piece(board)
    out[:, :, BLANK] = 0
    return out


def piece_masked_blank_and_initial(board: chess.Board) -> np.ndarray:
    """:func:`piece_masked_blank` with squares that still hold their starting piece zeroed.

    Absolute colours. The headline function of the paper: the start position is all zero, so
    only what the game has changed counts (a unit that memorises the opening setup scores 0)."""
    out = piece_masked_blank(board)
    out[mask_to_grid(unchanged_squares(board)).astype(bool)] = 0
    return out


def unchanged_squares(board: chess.Board) -> int:
    """Bitmask of the squares that hold the same piece as in the standard start position."""
    same = 0
    for color in (chess.WHITE, chess.BLACK):
        for ptype in chess.PIECE_TYPES:
            same |= board.pieces_mask(ptype, color) & _START.pieces_mask(ptype, color)
    return same


def piece_color(board: chess.Board) -> np.ndarray:
    """8×8×3 one-hot of each square's occupant colour: white, black, blank (absolute colours)."""
    out = np.zeros((8, 8, 3), dtype=np.uint8)
    out[:, :, 0] = mask_to_grid(board.occupied_co[chess.WHITE])
    out[:, :, 1] = mask_to_grid(board.occupied_co[chess.BLACK])
    out[:, :, 2] = mask_to_grid(~board.occupied & chess.BB_ALL)
    return out


# ---- square states --------------------------------------------------------------------------

def attacked_by(board: chess.Board, color: chess.Color) -> int:
    """Bitmask of the squares ``color`` attacks (pins ignored, as ``board.is_attacked_by``)."""
    m = 0
    for sq in chess.scan_forward(board.occupied_co[color]):
        m |= int(board.attacks_mask(sq))
    return m


def threat(board: chess.Board) -> np.ndarray:
    """8×8×1: squares attacked by the side NOT to move (the threats the side to move faces)."""
    return _square_fn(attacked_by(board, not board.turn))


def move_targets(moves) -> int:
    """Bitmask of the destination squares of ``moves``."""
    m = 0
    for mv in moves:
        m |= chess.BB_SQUARES[mv.to_square]
    return m


def legal_moves(board: chess.Board) -> np.ndarray:
    """8×8×1: squares the side to move can move a piece to with a legal move (castling: the
    king's destination)."""
    return _square_fn(move_targets(board.legal_moves))


def pseudo_legal_moves(board: chess.Board) -> np.ndarray:
    """8×8×1: as :func:`legal_moves` but over pseudo-legal moves (own king may be left in check)."""
    return _square_fn(move_targets(board.pseudo_legal_moves))


# ---- flags ----------------------------------------------------------------------------------

def pin(board: chess.Board) -> np.ndarray:
    """Side to move has a piece absolutely pinned to its own king."""
    us = board.turn
    return _flag(any(board.is_pinned(us, sq) for sq in chess.scan_forward(board.occupied_co[us])
                     if sq != board.king(us)))


def check(board: chess.Board) -> np.ndarray:
    """Side to move is in check."""
    return _flag(board.is_check())


def _targets(board: chess.Board, sq: int, kinds: tuple[int, ...]) -> int:
    them = not board.turn
    victims = 0
    for k in kinds:
        victims |= board.pieces_mask(k, them)
    return chess.popcount(int(board.attacks_mask(sq)) & victims)


def specific_fork(board: chess.Board) -> np.ndarray:
    """Side to move has an unpinned knight attacking two or more of the opponent's rooks,
    queens and king (the knight fork)."""
    us = board.turn
    return _flag(any(not board.is_pinned(us, sq)
                     and _targets(board, sq, (chess.ROOK, chess.QUEEN, chess.KING)) >= 2
                     for sq in board.pieces(chess.KNIGHT, us)))


def any_fork(board: chess.Board) -> np.ndarray:
    """Side to move has an unpinned piece (any type) attacking two or more opponent pieces other
    than pawns (knights, bishops, rooks, queens, king)."""
    us = board.turn
    kinds = (chess.KNIGHT, chess.BISHOP, chess.ROOK, chess.QUEEN, chess.KING)
    return _flag(any(not board.is_pinned(us, sq) and _targets(board, sq, kinds) >= 2
                     for sq in chess.scan_forward(board.occupied_co[us])))


def castling_rights(board: chess.Board) -> np.ndarray:
    """Side to move still has a castling right, either side (rights, not castling legal now)."""
    return _flag(board.has_castling_rights(board.turn))


def queenside_castling_rights(board: chess.Board) -> np.ndarray:
    """Side to move still has the queenside castling right."""
    return _flag(board.has_queenside_castling_rights(board.turn))


def kingside_castling_rights(board: chess.Board) -> np.ndarray:
    """Side to move still has the kingside castling right."""
    return _flag(board.has_kingside_castling_rights(board.turn))


def legal_en_passant(board: chess.Board) -> np.ndarray:
    """Side to move has a legal en-passant capture (not merely an en-passant square)."""
    return _flag(board.has_legal_en_passant())


def can_claim_draw(board: chess.Board) -> np.ndarray:
    """Side to move can claim a draw now (fifty moves or threefold repetition, counting a claim
    by announcing the move that repeats). Needs the board's move stack for repetitions.

    Shortcut before python-chess's costly check: a position cannot recur within 4 plies, so a
    third occurrence needs at least 8 reversible plies, and a claim by announcing a move needs a
    halfmove clock of 7 or more now (the fifty-move claim needs 99)."""
    if board.halfmove_clock < 7:
        return _flag(False)
    return _flag(board.can_claim_draw())


def can_check_next(board: chess.Board) -> np.ndarray:
    """Side to move has a legal move that gives check."""
    return _flag(any(board.gives_check(mv) for mv in board.legal_moves))


def bishop_pair(board: chess.Board) -> np.ndarray:
    """Side to move has bishops on both light and dark squares."""
    b = board.pieces_mask(chess.BISHOP, board.turn)
    return _flag(bool(b & chess.BB_LIGHT_SQUARES) and bool(b & chess.BB_DARK_SQUARES))


def opponent_mates_in_one(board: chess.Board) -> bool:
    """True if the side NOT to move would have a mate in one if it were its move.

    Definition: if the side to move is in check the answer is False (passing is impossible
    there and the opponent's move would be a king capture). Otherwise the turn is flipped with a
    null move (en-passant rights lapse, castling rights stay) and the opponent has a legal move
    after which the side to move is checkmated."""
    if board.is_check():
        return False
    b = board.copy(stack=False)
    b.push(chess.Move.null())
    return mate_in_one(b) is not None


def mate_threat(board: chess.Board) -> np.ndarray:
    """The opponent of the side to move threatens mate in one (see :func:`opponent_mates_in_one`)."""
    return _flag(opponent_mates_in_one(board))


def can_capture_queen(board: chess.Board) -> np.ndarray:
    """Side to move has a legal move capturing an opponent queen."""
    queens = board.pieces_mask(chess.QUEEN, not board.turn)
    return _flag(any(chess.BB_SQUARES[mv.to_square] & queens for mv in board.legal_moves))


def has_queen(board: chess.Board) -> np.ndarray:
    """Side to move has at least one queen."""
    return _flag(board.pieces_mask(chess.QUEEN, board.turn) != 0)


def connected_rooks(board: chess.Board) -> np.ndarray:
    """Side to move has two rooks on one rank or file with no piece between them."""
    rooks = list(board.pieces(chess.ROOK, board.turn))
    for i, a in enumerate(rooks):
        for b in rooks[i + 1:]:
            aligned = (chess.square_rank(a) == chess.square_rank(b)
                       or chess.square_file(a) == chess.square_file(b))
            if aligned and not (chess.between(a, b) & board.occupied):
                return _flag(True)
    return _flag(False)


def ambiguous_moves(board: chess.Board) -> np.ndarray:
    """Side to move has a legal move whose SAN needs disambiguation: two legal moves of pieces of
    one type (not pawns, whose captures always name the file) to the same square, the rule
    python-chess's ``board.san`` applies."""
    seen: set[tuple[int, int]] = set()
    for mv in board.legal_moves:
        ptype = board.piece_type_at(mv.from_square)
        if ptype == chess.PAWN:
            continue
        key = (ptype, mv.to_square)
        if key in seen:
            return _flag(True)
        seen.add(key)
    return _flag(False)


# ---- registry -------------------------------------------------------------------------------

@dataclass(frozen=True)
class BSPFunction:
    """One board-state property function and the layout of its output."""

    name: str
    """Registry key, e.g. ``"piece_masked_blank_and_initial"``."""
    fn: Callable[[chess.Board], np.ndarray]
    """Board → uint8 array of :attr:`shape`."""
    shape: tuple[int, int, int]
    """(rows, cols, classes)."""
    class_mask: np.ndarray
    """bool [classes]: True for classes that count (masked classes are always zero and are
    excluded from |G| in coverage)."""

    def __call__(self, board: chess.Board) -> np.ndarray:
        return self.fn(board)

    @property
    def n_cells(self) -> int:
        """rows·cols·classes: the length of a flat label row."""
        r, c, k = self.shape
        return r * c * k

    @property
    def cell_mask(self) -> np.ndarray:
        """bool [rows·cols·classes]: which flat cells count (class mask broadcast over squares)."""
        return np.broadcast_to(self.class_mask, self.shape).reshape(-1).copy()

    @property
    def n_counted(self) -> int:
        """|G|: the number of cells that count."""
        return int(self.cell_mask.sum())


def _entry(fn: Callable, shape: tuple[int, int, int], masked: tuple[int, ...] = ()) -> BSPFunction:
    mask = np.ones(shape[2], dtype=bool)
    mask[list(masked)] = False
    return BSPFunction(fn.__name__, fn, shape, mask)


_SQ = (8, 8, 1)
_FLAG = (1, 1, 1)

BSP_FUNCTIONS: dict[str, BSPFunction] = {e.name: e for e in [
    _entry(piece, (8, 8, 13)),
    _entry(piece_masked_blank, (8, 8, 13), masked=(BLANK,)),
    _entry(piece_masked_blank_and_initial, (8, 8, 13), masked=(BLANK,)),
    _entry(piece_color, (8, 8, 3)),
    _entry(threat, _SQ),
    _entry(legal_moves, _SQ),
    _entry(pseudo_legal_moves, _SQ),
    _entry(pin, _FLAG),
    _entry(check, _FLAG),
    _entry(specific_fork, _FLAG),
    _entry(any_fork, _FLAG),
    _entry(castling_rights, _FLAG),
    _entry(queenside_castling_rights, _FLAG),
    _entry(kingside_castling_rights, _FLAG),
    _entry(legal_en_passant, _FLAG),
    _entry(can_claim_draw, _FLAG),
    _entry(can_check_next, _FLAG),
    _entry(bishop_pair, _FLAG),
    _entry(mate_threat, _FLAG),
    _entry(can_capture_queen, _FLAG),
    _entry(has_queen, _FLAG),
    _entry(connected_rooks, _FLAG),
    _entry(ambiguous_moves, _FLAG),
]}
"""The 23 default BSP functions, in the reference's order (dicts keep insertion order)."""

assert len(BSP_FUNCTIONS) == 23
