"""Random-move games: every move drawn uniformly from the legal moves.

The control of the board probe: a model trained on such games sees the same characters and the
same rules as one trained on real games, but no opening theory, no plans and far more varied
positions. Games stop at mate, a draw by the rules python-chess checks cheaply, or ``max_plies``.
"""

from __future__ import annotations

import chess
import numpy as np

from moelens.data.chess.vocab import game_string


def random_game(rng: np.random.Generator, max_plies: int) -> str:
    """One game of uniformly random legal moves, as ``;1.e4 e5 …``."""
    board = chess.Board()
    sans: list[str] = []
    while len(sans) < max_plies and not board.is_game_over(claim_draw=False):
        moves = list(board.legal_moves)
        move = moves[int(rng.integers(len(moves)))]
        sans.append(board.san(move))
        board.push(move)
    return game_string(sans)


def random_games(n: int, seed: int, max_plies: int = 120) -> list[str]:
    """``n`` random-move games; game i draws from a generator seeded with (seed, i)."""
    return [random_game(np.random.default_rng([seed, i]), max_plies) for i in range(n)]
