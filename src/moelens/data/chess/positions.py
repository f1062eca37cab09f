"""The scored positions of chess games: the "." characters (the position just before White's
move) of a game string, and the python-chess board at each.

The reference scores at most the first 20 such positions per game within the first 256
characters; both limits are parameters. A unit's activation at a position is read at that
character's index, so a position is the pair (game index, character index).
"""

from __future__ import annotations

from dataclasses import dataclass

import chess

from moelens.data.chess.vocab import IllegalGame, replay, trim_partial

MAX_POSITIONS = 20
"""Default cap on positions per game (the reference's)."""

MAX_CHARS = 256
"""Default character window: only "." characters at an index below this count."""


@dataclass
class GamePosition:
    """One scored position of one game."""

    char_index: int
    """Index of the "." character in the game string (where activations are read)."""
    board: chess.Board
    """The board just before White's move there, with its move stack (for repetition claims)."""


def replay_tolerant(text: str) -> list[str]:
    """SAN moves of a game string; a last token cut short (a block or window boundary) is
    dropped. Raises :class:`IllegalGame` for anything else that does not replay."""
    try:
        return replay(text)
    except IllegalGame as err:
        if not err.partial:
            raise
        return replay(trim_partial(text))


def game_positions(text: str, max_positions: int = MAX_POSITIONS,
                   max_chars: int = MAX_CHARS) -> list[GamePosition]:
    """The positions of one game string: the k-th "." (k = 0, 1, …) is the board after 2k
    plies. Only dots at an index < ``max_chars`` and at most ``max_positions`` of them count.
    Raises :class:`IllegalGame` if the game does not replay."""
    sans = replay_tolerant(text)
    dots = [i for i, c in enumerate(text[:max_chars]) if c == "."][:max_positions]
    board = chess.Board()
    out: list[GamePosition] = []
    ply = 0
    for k, idx in enumerate(dots):
        if 2 * k > len(sans):
            break
        while ply < 2 * k:
            board.push_san(sans[ply])
            ply += 1
        out.append(GamePosition(idx, board.copy()))
    return out


@dataclass
class GamesPositions:
    """The positions of a list of games, in game order."""

    game_index: list[int]
    """Per position: the index of its game in the input list."""
    char_index: list[int]
    """Per position: the index of its "." in the game string."""
    boards: list[chess.Board]
    """Per position: the board before White's move."""
    skipped: list[int]
    """Indices of the games that did not replay (illegal); they contribute no positions."""


def games_positions(games: list[str], max_positions: int = MAX_POSITIONS,
                    max_chars: int = MAX_CHARS) -> GamesPositions:
    """Positions of every game; illegal games are skipped and listed, never fatal."""
    gi: list[int] = []
    ci: list[int] = []
    boards: list[chess.Board] = []
    skipped: list[int] = []
    for g, text in enumerate(games):
        try:
            pos = game_positions(text, max_positions, max_chars)
        except IllegalGame:
            skipped.append(g)
            continue
        for p in pos:
            gi.append(g)
            ci.append(p.char_index)
            boards.append(p.board)
    return GamesPositions(gi, ci, boards, skipped)
