"""Positions of game strings, labels of games files and their cache."""

from __future__ import annotations

import random

import chess
import numpy as np
import pytest

from moelens.data.chess import labels as labels_mod
from moelens.data.chess.bsp import BSP_FUNCTIONS
from moelens.data.chess.labels import compute_labels, labels_for_file, labels_of_boards
from moelens.data.chess.positions import game_positions, games_positions
from moelens.data.chess.vocab import game_string
from moelens.errors import DataError

GAME = ";1.e4 e5 2.Nf3 Nc6 3.Bb5 a6 4.Ba4"


def random_games(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    games = []
    for _ in range(n):
        board, sans = chess.Board(), []
        for _ in range(rng.randint(10, 70)):
            ms = list(board.legal_moves)
            if not ms:
                break
            m = rng.choice(ms)
            sans.append(board.san(m))
            board.push(m)
        games.append(game_string(sans))
    return games


def test_positions_of_a_known_game():
    pos = game_positions(GAME)
    assert [p.char_index for p in pos] == [2, 10, 20, 29]
    assert all(GAME[p.char_index] == "." for p in pos)
    assert pos[0].board == chess.Board()
    assert pos[1].board.board_fen() == "rnbqkbnr/pppp1ppp/8/4p3/4P3/8/PPPP1PPP/RNBQKBNR"
    assert pos[3].board.board_fen() == "r1bqkbnr/1ppp1ppp/p1n5/1B2p3/4P3/5N2/PPPP1PPP/RNBQK2R"
    assert all(p.board.turn == chess.WHITE for p in pos)
    assert len(pos[3].board.move_stack) == 6
    assert [p.char_index for p in game_positions(GAME, max_positions=2)] == [2, 10]
    assert [p.char_index for p in game_positions(GAME, max_chars=20)] == [2, 10]


def test_cut_off_last_token_is_tolerated_and_illegal_game_counted():
    assert [p.char_index for p in game_positions(GAME[:-2])] == [2, 10, 20, 29]  # "4.B" cut
    out = games_positions([GAME, ";1.e4 e4 2.Nf3", GAME])
    assert out.skipped == [1]
    assert out.game_index == [0] * 4 + [2] * 4


def test_batched_labels_equal_the_board_functions():
    pos = games_positions(random_games(30, seed=3))
    labs = labels_of_boards(pos.boards)
    assert list(labs) == list(BSP_FUNCTIONS)
    for name, f in BSP_FUNCTIONS.items():
        direct = np.stack([f(b).reshape(-1) for b in pos.boards]).astype(bool)
        assert labs[name].dtype == bool and labs[name].shape == (len(pos.boards), f.n_cells)
        assert np.array_equal(labs[name], direct), name


def test_compute_labels_table():
    lab = compute_labels([GAME, "not a game", GAME])
    assert lab.n_games == 3 and lab.n_skipped == 1 and lab.skipped.tolist() == [1]
    assert lab.game_index.tolist() == [0, 0, 0, 0, 2, 2, 2, 2]
    assert lab.char_index.tolist() == [2, 10, 20, 29] * 2
    assert not lab.labels["piece_masked_blank_and_initial"][0].any()
    assert lab.labels["castling_rights"][:, 0].all()


def test_cache_reused_and_invalidated(tmp_path, monkeypatch):
    games = tmp_path / "games.txt"
    games.write_text("\n".join(random_games(5, seed=4) + [";1.e4 e5 2.Ke4"]) + "\n")
    first = labels_for_file(games, cache_dir=tmp_path / "cache")
    assert first.n_skipped == 1 and first.n_games == 6
    assert len(list((tmp_path / "cache").glob("games.txt.bsp-*.npz"))) == 1

    def fail(*a, **k):
        raise AssertionError("labels recomputed although the cache is valid")

    monkeypatch.setattr(labels_mod, "compute_labels", fail)
    second = labels_for_file(games, cache_dir=tmp_path / "cache")
    assert np.array_equal(first.game_index, second.game_index)
    assert np.array_equal(first.skipped, second.skipped)
    for name in BSP_FUNCTIONS:
        assert np.array_equal(first.labels[name], second.labels[name]), name

    with open(games, "a") as fh:
        fh.write(GAME + "\n")
    with pytest.raises(AssertionError, match="recomputed"):
        labels_for_file(games, cache_dir=tmp_path / "cache")
    with pytest.raises(AssertionError, match="recomputed"):   # other settings, other key
        labels_for_file(games.with_name("games.txt"), cache_dir=tmp_path / "cache",
                        max_positions=5)
    monkeypatch.undo()
    third = labels_for_file(games, cache_dir=tmp_path / "cache")
    assert third.n_games == 7 and third.n_positions == first.n_positions + 4
    assert len(list((tmp_path / "cache").glob("games.txt.bsp-*.npz"))) == 1   # stale removed
    # default location: next to the games file
    labels_for_file(games)
    assert len(list(tmp_path.glob("games.txt.bsp-*.npz"))) == 1


def test_missing_games_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        labels_for_file(tmp_path / "none.txt")


def test_a_line_that_is_no_game_string_is_an_error(tmp_path):
    for text, why in (("1.e4 e5", "does not start"), (";1.e4 e5 2.Nf3 Nc6!", "'!'")):
        path = tmp_path / "games.txt"
        path.write_text(GAME + "\n" + text + "\n")
        with pytest.raises(DataError, match=f"games.txt:2 is not a game string.*{why}"):
            labels_for_file(path)
