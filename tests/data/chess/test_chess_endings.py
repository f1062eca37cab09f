"""How generated games end: mate search, resignation of lost positions, draw rules, and the
result that the quickstart's games fit in one training block."""

from __future__ import annotations

import dataclasses

import chess
import numpy as np
import pytest

from moelens.config import from_dict
from moelens.data.chess import replay
from moelens.data.chess.dataset import resolve_spec
from moelens.data.chess.generate import game_over, play_game
from moelens.data.chess.players import BuiltinPlayer, mate_in_two, material_balance
from moelens.data.commands import ChessDataConfig


def _quickstart_spec(**kw):
    """The settings `moelens data chess --seed 0` uses without Stockfish (and without a book,
    so the test does not depend on what this machine has installed)."""
    cfg = from_dict(ChessDataConfig, {"player": "builtin", "book": "none", "seed": 0, **kw})
    return resolve_spec(cfg)


def _mates_in_one(board: chess.Board) -> list[chess.Move]:
    found = []
    for move in board.legal_moves:
        board.push(move)
        if board.is_checkmate():
            found.append(move)
        board.pop()
    return found


def _forces_mate_in_two(board: chess.Board, move: chess.Move) -> bool:
    """Brute force over every reply (not only checks): each one allows a mate in one."""
    board.push(move)
    try:
        replies = list(board.legal_moves)
        ok = bool(replies)
        for reply in replies:
            board.push(reply)
            ok = ok and bool(_mates_in_one(board))
            board.pop()
        return ok
    finally:
        board.pop()


@pytest.mark.parametrize("fen", ["6R1/2k5/7R/8/8/4K3/8/8 w - - 0 1",
                                 "8/8/8/R7/8/2R2K2/8/3k4 w - - 0 1",
                                 "8/8/4k3/8/8/7r/2K5/6r1 b - - 0 1"])
def test_builtin_player_mates_in_two_when_it_can(fen):
    board = chess.Board(fen)
    assert not _mates_in_one(board)
    for seed in range(8):  # whatever the game's temperature and generator
        move = BuiltinPlayer().choose(board, np.random.default_rng(seed), 1, 60.0)
        assert _forces_mate_in_two(board, move), (seed, move)


def test_mate_in_two_finds_none_where_there_is_none():
    assert mate_in_two(chess.Board()) is None
    # a rook up but the king is in the middle of the board: no forced mate in two
    board = chess.Board("8/8/8/3k4/8/8/8/R3K3 w - - 0 1")
    assert mate_in_two(board) is None
    assert not any(_forces_mate_in_two(board, m) for m in board.legal_moves)


def test_draw_rules_end_the_game():
    assert game_over(chess.Board("7k/5Q2/6K1/8/8/8/8/8 b - - 0 1"))  # stalemate
    assert game_over(chess.Board("8/8/4k3/8/8/3NK3/8/8 w - - 0 1"))  # insufficient material
    assert game_over(chess.Board("8/8/4k3/8/8/3RK3/8/8 w - - 100 80"))  # fifty moves
    assert not game_over(chess.Board("8/8/4k3/8/8/3RK3/8/8 w - - 99 80"))
    board = chess.Board()
    for _ in range(2):
        for san in ("Nf3", "Nf6", "Ng1", "Ng8"):
            assert not game_over(board)
            board.push_san(san)
    assert game_over(board)  # the start position for the third time


def _resigned_at(sans: list[str], resign_cp: int, plies: int) -> int | None:
    """First ply after which one side has been down ``resign_cp`` for ``plies`` plies running."""
    board, run, side = chess.Board(), 0, None
    for i, san in enumerate(sans):
        board.push_san(san)
        balance = material_balance(board)
        lead = None if abs(balance) < resign_cp else balance > 0
        run = 0 if lead is None else (run + 1 if lead == side else 1)
        side = lead
        if run >= plies:
            return i + 1
    return None


def test_lost_positions_are_resigned_and_resigning_only_stops_the_game():
    spec = _quickstart_spec(max_plies=300)
    played_on = dataclasses.replace(spec, resign_cp=0)
    player = BuiltinPlayer()
    resigned = 0
    for i in range(12):
        sans = replay(play_game(i, spec, player, None))
        full = replay(play_game(i, played_on, player, None))
        assert full[:len(sans)] == sans  # the same moves: adjudication only ends the game early
        at = _resigned_at(full, spec.resign_cp, spec.resign_plies)
        board = chess.Board()
        for san in sans:
            board.push_san(san)
        if at is not None and at <= len(sans):
            assert len(sans) == at  # stopped on the ply the rule was met, not later
            resigned += len(sans) < len(full)
        else:
            assert sans == full
            assert game_over(board) or len(sans) == spec.max_plies
    assert resigned >= 3  # the rule is exercised, not vacuous


def test_quickstart_games_fit_in_one_block():
    """The quickstart's games end by mate, draw or resignation well inside 1024 characters."""
    spec = _quickstart_spec()
    player = BuiltinPlayer()
    games = [play_game(i, spec, player, None) for i in range(30)]
    fit = sum(len(g) <= 1024 for g in games)
    assert fit >= 27, sorted(len(g) for g in games)  # >= 90%
    assert len({g[:14] for g in games}) >= 25  # still varied: openings differ by seed
    mates = 0
    for g in games:
        board = chess.Board()
        for san in replay(g):
            board.push_san(san)
        mates += board.is_checkmate()
    assert mates >= 5  # many games are played out to mate, not all resigned
