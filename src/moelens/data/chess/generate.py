"""Offline game generation: seeded games, played in parallel, written in atomic shards.

Game ``i`` is played with its own generator ``default_rng([seed, i])`` and a fresh engine state,
so the output is the same whatever the number of worker processes. Games are grouped into shards
of ``shard_games``; each shard is written to a temporary name and renamed when complete, so an
interrupted run resumes from the shards already on disk. Every game is replayed with python-chess
(:func:`moelens.data.chess.replay`) before it is written.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import chess
import numpy as np

from moelens.data.chess.players import Book, BuiltinPlayer, StockfishPlayer, material_balance
from moelens.data.chess.vocab import game_string, replay
from moelens.errors import DataError
from moelens.rundir import atomic_write_text


@dataclass(frozen=True)
class GameSpec:
    """Everything that decides a generated game (saved with the shards to detect a changed run)."""

    seed: int
    player: str  # "stockfish" | "builtin"
    stockfish: str | None
    multipv: int
    depth_min: int
    depth_max: int
    temperature_min: float
    temperature_max: float
    book: str | None
    book_plies: int
    random_plies: int
    max_plies: int
    resign_cp: int
    resign_plies: int


# What the games are a function of besides the spec: bump when a player or the rules of
# play_game change, so shards played by older code are not mixed with new ones.
GENERATOR_VERSION = 2


def game_over(board: chess.Board) -> bool:
    """Mate or a draw by rule: stalemate, insufficient material, threefold repetition or the
    fifty-move rule (both claimable draws are taken as soon as they can be claimed)."""
    return board.is_game_over(claim_draw=False) or board.is_repetition(3) \
        or board.halfmove_clock >= 100


def play_game(index: int, spec: GameSpec, player, book: Book | None) -> str:
    """Play game ``index`` to mate, a draw, a resignation or ``max_plies`` and return its
    validated string.

    Resignation (adjudication of a lost position): when one side has been down at least
    ``resign_cp`` of material for ``resign_plies`` plies in a row, the game ends there. The game
    string has no result field, so a resigned game simply stops after its last move (as does a
    game that reaches ``max_plies``); how a game ended can only be read from its final position.
    Resigning never changes a move: the game is the prefix of the one played with
    ``resign_cp=0``."""
    rng = np.random.default_rng([spec.seed, index])
    depth = int(rng.integers(spec.depth_min, spec.depth_max + 1))
    temperature = float(rng.uniform(spec.temperature_min, spec.temperature_max))
    opening = int(rng.integers(1, spec.book_plies + 1)) if book is not None and spec.book_plies \
        else int(rng.integers(0, spec.random_plies + 1))
    board = chess.Board()
    sans: list[str] = []
    player.new_game()
    lost_for, leader = 0, True  # plies in a row the same side (leader: White) has been ahead
    while len(sans) < spec.max_plies and not game_over(board) \
            and not (spec.resign_cp and lost_for >= spec.resign_plies):
        move = None
        if len(sans) < opening:
            if book is not None:
                move = book.move(board, rng)
            else:
                legal = list(board.legal_moves)
                move = legal[int(rng.integers(len(legal)))]
        if move is None:
            opening = 0  # out of book: the player takes over for good
            move = player.choose(board, rng, depth, temperature)
        sans.append(board.san(move))
        board.push(move)
        if spec.resign_cp:
            balance = material_balance(board)
            if abs(balance) < spec.resign_cp:
                lost_for = 0
            else:
                lost_for = lost_for + 1 if lost_for and (balance > 0) == leader else 1
                leader = balance > 0
    text = game_string(sans)
    if replay(text) != sans:  # pragma: no cover - a python-chess/SAN inconsistency
        raise RuntimeError(f"generated game {index} does not replay")
    return text


# ---------------------------------------------------------------- workers

_WORKER: dict = {}


def _make_player(spec: GameSpec):
    if spec.player == "stockfish":
        return StockfishPlayer(spec.stockfish or "stockfish", multipv=spec.multipv)
    return BuiltinPlayer()


def _init_worker(spec: GameSpec) -> None:
    _WORKER["spec"] = spec
    _WORKER["player"] = _make_player(spec)
    _WORKER["book"] = Book(spec.book) if spec.book else None


def _play_shard(job: tuple[int, int, str]) -> int:
    start, stop, path = job
    spec, player, book = _WORKER["spec"], _WORKER["player"], _WORKER["book"]
    games = [play_game(i, spec, player, book) for i in range(start, stop)]
    atomic_write_text(path, "\n".join(games) + "\n")
    return stop - start


def shard_path(shard_dir: Path, start: int, stop: int) -> Path:
    """Shard of games ``start..stop-1``: named by its range, so a run asking for more games
    later reuses every shard whose range it shares."""
    return shard_dir / f"gen-{start:09d}-{stop:09d}.txt"


def generate(spec: GameSpec, n_games: int, shard_dir: Path, shard_games: int, workers: int,
             progress) -> list[Path]:
    """Play games ``0..n_games-1`` into shards under ``shard_dir`` (reusing finished shards)."""
    shard_dir.mkdir(parents=True, exist_ok=True)
    paths, jobs = [], []
    for start in range(0, n_games, shard_games):
        stop = min(start + shard_games, n_games)
        p = shard_path(shard_dir, start, stop)
        paths.append(p)
        if p.exists():
            progress.update(stop - start)
        else:
            jobs.append((start, stop, str(p)))
    if not jobs:
        return paths
    workers = max(1, min(workers, len(jobs)))
    if workers == 1:
        _init_worker(spec)
        try:
            for job in jobs:
                progress.update(_play_shard(job))
        finally:
            _close_worker()
        return paths
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(spec,)) as pool:
        for done in pool.imap_unordered(_play_shard, jobs):
            progress.update(done)
    return paths


def _close_worker() -> None:
    for key in ("player", "book"):
        obj = _WORKER.pop(key, None)
        if obj is not None:
            obj.close()


def read_shard(path: Path) -> Iterator[str]:
    with open(path, encoding="ascii") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if line:
                yield line


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))


def check_player(spec: GameSpec) -> str:
    """Start the player once in this process (fails fast, one line) and return its version."""
    if spec.player != "stockfish":
        return "builtin"
    if not spec.stockfish:
        raise DataError("stockfish binary not found; install it (apt-get install stockfish), give "
                        "--stockfish_path, or use --player builtin")
    sf = StockfishPlayer(spec.stockfish, multipv=spec.multipv)
    try:
        return sf.version
    finally:
        sf.close()
