"""Generated games: legal, seeded, independent of the worker count; Stockfish when installed."""

from __future__ import annotations

from pathlib import Path

import chess
import numpy as np
import pytest

from moelens.data.chess import game_string, replay
from moelens.data.chess.generate import GameSpec, generate, play_game, read_shard
from moelens.data.chess.players import (
    BuiltinPlayer,
    StockfishPlayer,
    _parse_info,
    evaluate_move,
    find_book,
    find_stockfish,
)

STOCKFISH = find_stockfish()


class _Count:
    def __init__(self):
        self.n = 0

    def update(self, k):
        self.n += k


def _spec(player="builtin", **kw) -> GameSpec:
    base = dict(seed=7, player=player, stockfish=STOCKFISH if player == "stockfish" else None,
                multipv=3, depth_min=1, depth_max=3, temperature_min=10.0, temperature_max=60.0,
                book=None, book_plies=8, random_plies=4, max_plies=40, resign_cp=600,
                resign_plies=12)
    base.update(kw)
    return GameSpec(**base)


def _games(spec, n, tmp: Path, workers: int, shard_games=2) -> list[str]:
    bar = _Count()
    paths = generate(spec, n, tmp, shard_games, workers, bar)
    assert bar.n == n
    return [g for p in paths for g in read_shard(p)]


def test_builtin_games_replay_and_depend_only_on_seed(tmp_path):
    full = _spec(max_plies=300)  # whole games: mates, draws and resignations
    one = _games(full, 6, tmp_path / "a", workers=1)
    two = _games(full, 6, tmp_path / "b", workers=2)
    assert one == two and len(one) == 6
    assert len(set(one)) == 6  # games differ
    for g in one:
        sans = replay(g)
        assert 1 <= len(sans) <= 300
    assert _games(_spec(), 6, tmp_path / "short", workers=1) == \
        [game_string(replay(g)[:40]) for g in one]  # the move cap only cuts
    other = _games(_spec(seed=8), 6, tmp_path / "c", workers=1)
    assert other != one


def test_resume_reuses_finished_shards(tmp_path):
    first = _games(_spec(), 4, tmp_path, workers=1)
    (tmp_path / "gen-000000002-000000004.txt").unlink()
    bar = _Count()
    generate(_spec(), 4, tmp_path, 2, 1, bar)
    assert bar.n == 4
    assert [g for p in sorted(tmp_path.glob("gen-*.txt")) for g in read_shard(p)] == first


def test_builtin_player_takes_mate_and_avoids_hanging_the_queen():
    board = chess.Board("6k1/5ppp/8/8/8/8/5PPP/R5K1 w - - 0 1")  # Ra8# available
    mate = chess.Move.from_uci("a1a8")
    assert BuiltinPlayer().choose(board, np.random.default_rng(0), 1, 10.0) == mate
    board = chess.Board("rnb1kbnr/pppp1ppp/8/4p1q1/4P3/3P4/PPP2PPP/RNBQKBNR b KQkq - 0 3")
    # the queen on g5 is attacked by the c1 bishop: keeping it there scores far below moving it
    stay = evaluate_move(board, chess.Move.from_uci("a7a6"))
    flee = evaluate_move(board, chess.Move.from_uci("g5f6"))
    assert flee > stay + 500


def test_uci_info_parsing():
    assert _parse_info("info depth 3 seldepth 3 multipv 2 score cp -44 nodes 267 pv c7c5 b1c3") \
        == (2, -44.0, "c7c5")
    mpv, score, move = _parse_info("info depth 5 multipv 1 score mate 2 nodes 9 pv d1h5 g8f6")
    assert mpv == 1 and score > 90_000 and move == "d1h5"
    assert _parse_info("info depth 5 multipv 1 score cp 20 lowerbound nodes 9 pv e2e4") is None
    assert _parse_info("info string NNUE enabled") is None


@pytest.mark.skipif(STOCKFISH is None, reason="stockfish binary not installed")
def test_stockfish_games_are_legal_and_deterministic(tmp_path):
    spec = _spec("stockfish", book=find_book(), max_plies=30)
    player = StockfishPlayer(STOCKFISH, multipv=3)
    try:
        a = [play_game(i, spec, player, None) for i in range(3)]
        b = [play_game(i, spec, player, None) for i in (2, 1, 0)][::-1]
    finally:
        player.close()
    assert a == b and len(set(a)) == 3
    for g in a:
        assert 1 <= len(replay(g)) <= 30
    assert _games(spec, 3, tmp_path, workers=2, shard_games=1) == \
        _games(spec, 3, tmp_path / "w1", workers=1, shard_games=3)


def test_auto_player_falls_back_to_builtin_and_explicit_stockfish_needs_the_binary(tmp_path):
    from moelens.config import from_dict
    from moelens.data.chess.dataset import resolve_spec
    from moelens.data.commands import ChessDataConfig
    from moelens.errors import DataError

    missing = str(tmp_path / "no-stockfish")
    cfg = from_dict(ChessDataConfig, {"stockfish_path": missing, "book": "none"})
    spec = resolve_spec(cfg)
    assert spec.player == "builtin" and spec.stockfish is None and spec.book is None
    with pytest.raises(DataError, match="stockfish"):
        resolve_spec(from_dict(ChessDataConfig, {"stockfish_path": missing, "player": "stockfish"}))
    with pytest.raises(DataError, match="opening book"):
        resolve_spec(from_dict(ChessDataConfig, {"book": str(tmp_path / "none.bin")}))


@pytest.mark.skipif(find_book() is None, reason="no polyglot book (Debian gnuchess-book)")
def test_book_openings_are_weighted_real_moves():
    import chess.polyglot

    spec = _spec(book=find_book(), book_plies=4, max_plies=4)
    book_first = {e.move for e in chess.polyglot.open_reader(find_book()).find_all(chess.Board())}
    from moelens.data.chess.players import Book

    book = Book(spec.book)
    firsts = set()
    for i in range(12):
        sans = replay(play_game(i, spec, BuiltinPlayer(), book))
        firsts.add(chess.Board().parse_san(sans[0]))
    assert firsts <= book_first and len(firsts) > 1


def test_fewer_games_than_a_shard_play_in_this_process(tmp_path, monkeypatch):
    """One shard's worth of games is one job: no process pool is started for it (a pool's
    start-up costs more than the games), whatever --workers says."""
    import moelens.data.chess.generate as gen

    def no_pool(*a, **kw):
        raise AssertionError("a process pool was started")

    monkeypatch.setattr(gen.mp, "get_context", no_pool)
    games = _games(_spec(), 5, tmp_path / "one", workers=4, shard_games=256)
    assert len(games) == 5
    monkeypatch.undo()
    assert _games(_spec(), 5, tmp_path / "pool", workers=2, shard_games=256) == games
    # more than one shard does use the pool (so the check above can fail)
    monkeypatch.setattr(gen.mp, "get_context", no_pool)
    with pytest.raises(AssertionError, match="pool"):
        _games(_spec(), 4, tmp_path / "two", workers=2, shard_games=2)
