"""Small parts of the chess experiment: held-out game cutting, legal-move prompts and scoring,
and which models are trained in which order."""

from __future__ import annotations

from types import SimpleNamespace

import chess
import numpy as np
import torch

from moelens.data.chess import CHESS_VOCAB
from moelens.data.chess.random_games import random_games
from moelens.data.chess.vocab import replay
from moelens.experiments.chess_data import cut_game
from moelens.experiments.chess_models import roster
from moelens.training.legal_moves import greedy_move, is_legal, legal_move_rate, prompts


def test_cut_game_keeps_whole_moves_within_the_limit():
    for game in random_games(20, seed=1, max_plies=80):
        cut = cut_game(game, 100)
        assert len(cut) <= 100 and game.startswith(cut)
        assert replay(cut) == replay(game)[:len(replay(cut))]  # no half move left at the end
    assert cut_game(";1.e4 e5", 100) == ";1.e4 e5"


def test_prompts_end_where_a_move_starts_and_carry_its_board():
    game = ";1.e4 e5 2.Nf3 Nc6 3.Bb5"
    got = {p.text: p.board for p in prompts([game], n=100, seed=0)}
    assert set(got) == {";1.", ";1.e4 ", ";1.e4 e5 2.", ";1.e4 e5 2.Nf3 ", ";1.e4 e5 2.Nf3 Nc6 3."}
    assert got[";1.e4 e5 2.Nf3 "].turn == chess.BLACK
    assert got[";1.e4 e5 2.Nf3 "].piece_at(chess.F3) == chess.Piece(chess.KNIGHT, chess.WHITE)
    assert is_legal(got[";1."], "Nf3") and not is_legal(got[";1."], "Nf6")
    assert not is_legal(got[";1."], "") and not is_legal(got[";1."], "--")


class _Scripted(torch.nn.Module):
    """A 'model' that always continues with the characters of ``reply`` then a space."""

    def __init__(self, reply: str):
        super().__init__()
        self.ids = [CHESS_VOCAB.index(c) for c in reply + " "]

    def forward(self, ids):
        step = min(ids.shape[1] - self.start, len(self.ids) - 1)
        logits = torch.zeros(1, ids.shape[1], len(CHESS_VOCAB))
        logits[0, -1, self.ids[step]] = 1.0
        return SimpleNamespace(logits=logits)


def test_greedy_moves_are_read_up_to_the_space_and_checked():
    model = _Scripted("Nf3")
    model.start = len(";1.")
    assert greedy_move(model, ";1.") == "Nf3"
    games = [";1.e4 e5"]
    # one seeded prompt, ';1.' or ';1.e4 ': Nf3 is legal only when White is to move
    first = prompts(games, 1, 0)[0]
    model.start = len(first.text)
    rate = legal_move_rate(model, games, n=1, seed=0)
    assert rate == {"legal_move_rate": float(first.board.turn == chess.WHITE), "n_prompts": 1}


def test_roster_order_seeds_and_bases():
    cfg = SimpleNamespace(models=[], seeds=[3, 4, 5])
    names = [r.name for r in roster(cfg)]
    assert names[:5] == ["dense_gelu-s3", "dense_random-s3", "dense_untrained-s3", "moex-s3",
                         "switch-s3"]
    assert len(names) == 17 and len(set(names)) == 17
    assert {n for n in names if n.startswith("moex-")} == {"moex-s3", "moex-s4", "moex-s5"}
    assert "dense_relu-s4" not in names  # one seed for the others
    up = roster(SimpleNamespace(models=["moex_upcycled"], seeds=[3, 4]))
    assert [r.name for r in up] == ["dense_gelu-s3", "moex_upcycled-s3"]
    assert up[1].starts_from == "dense_gelu-s3" and up[1].is_moe and not up[0].is_moe
    assert np.all([r.data == "chess" for r in up])
