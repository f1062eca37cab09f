"""Board metrics read from real stores: every unit space at the games' scored positions equals
the units computed directly from the model, and the streamed, vectorised scores equal the loop
reference on those direct activations (what must be shown #2, per unit space)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from .chess_stores import capture_store, direct_units, tiny_chess_model

from moelens.analysis.boardgame.reference import reference_scores
from moelens.analysis.boardgame.run import score_store
from moelens.analysis.boardgame.units import match_positions, unit_blocks
from moelens.data.chess.bsp import BSP_FUNCTIONS
from moelens.data.chess.labels import labels_for_file, read_games
from moelens.data.chess.random_games import random_games
from moelens.store import ActivationStore

FUNCTIONS = ["threat", "check", "has_queen", "castling_rights"]
ILLEGAL = ";1.e4 e5 2.Ke4"


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("bgstore")
    games = random_games(16, seed=3, max_plies=50)
    games.insert(5, ILLEGAL)  # skipped and counted, not fatal
    gfile = root / "games.txt"
    gfile.write_text("\n".join(games) + "\n")
    moe = tiny_chess_model(root / "moe", ffn="moe", expert_act="relu", router="sparsity")
    dense = tiny_chess_model(root / "dense", seed=1, ffn="dense", ffn_act="gelu")
    return SimpleNamespace(
        games=gfile, moe=moe, dense=dense,
        moe_store=capture_store(moe, gfile, root / "moe-store", ["expert", "expert_gate", "resid"]),
        dense_store=capture_store(dense, gfile, root / "dense-store", ["ffn", "resid"]),
        short_store=capture_store(dense, gfile, root / "short-store", ["ffn"], ctx=64))


def _cfg(**kw):
    base = dict(layers=[1], spaces=[], semantics=["gated", "zero_filled"], functions=FUNCTIONS,
                labelling="corrected", fit_fraction=0.5, seed=0, chunk_units=5, probe=False,
                quiet=True)
    return SimpleNamespace(**{**base, **kw})


CASES = [("moe", "expert", "gated"), ("moe", "expert", "zero_filled"), ("moe", "resid", ""),
         ("dense", "ffn", ""), ("dense", "resid", "")]


@pytest.mark.parametrize("model,space,semantics", CASES)
def test_store_units_equal_the_model_and_scores_equal_the_reference(stores, model, space,
                                                                    semantics):
    store = ActivationStore.open(getattr(stores, f"{model}_store"))
    games = read_games(stores.games)
    labels = labels_for_file(stores.games)
    assert labels.n_skipped == 1 and labels.skipped.tolist() == [5]
    pos = match_positions(store, games, labels, 0.5, 0)
    blocks = list(unit_blocks(store, 1, space, semantics, pos.fit_tokens, pos.test_tokens))
    a_fit = np.concatenate([b[0] for b in blocks], axis=1)
    a_test = np.concatenate([b[1] for b in blocks], axis=1)
    # the same units straight from the model, at each position's "." character
    key = f"{space}/{semantics}" if semantics else space
    direct = {g: direct_units(getattr(stores, model), games[g], 1)[key]
              for g in np.unique(labels.game_index)}

    def at(rows):
        return np.stack([direct[labels.game_index[r]][labels.char_index[r]] for r in rows])

    d_fit, d_test = at(pos.fit_rows), at(pos.test_rows)
    scale = np.abs(d_fit).max()
    np.testing.assert_allclose(a_fit, d_fit, rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(a_test, d_test, rtol=0, atol=1e-5 * scale)
    assert (a_fit != 0).any() and (a_fit == 0).any() if space == "expert" else True
    # fitting and test games are disjoint and together hold every legal game's positions
    fit_games = set(labels.game_index[pos.fit_rows])
    test_games = set(labels.game_index[pos.test_rows])
    assert not fit_games & test_games and len(fit_games | test_games) == 16
    assert pos.fit_rows.size + pos.test_rows.size == labels.n_positions
    assert pos.n_dropped_positions == 0

    got = score_store(store, games, labels, _cfg(spaces=[space], semantics=[semantics or "gated"]))
    mine = {r["function"]: r for r in got.rows}
    for name in FUNCTIONS:
        f = BSP_FUNCTIONS[name]
        ref = reference_scores(d_fit, d_test, labels.labels[name][pos.fit_rows],
                               labels.labels[name][pos.test_rows], f.cell_mask, "corrected")
        assert mine[name]["coverage"] == pytest.approx(ref["coverage"], abs=1e-6)
        assert mine[name]["reconstruction"] == pytest.approx(ref["reconstruction"], abs=1e-6)
        assert mine[name]["n_alive"] == ref["n_alive"]


def test_positions_outside_the_first_window_are_dropped(stores):
    store = ActivationStore.open(stores.short_store)  # captured with ctx 64
    labels = labels_for_file(stores.games)
    pos = match_positions(store, read_games(stores.games), labels, 0.5, 0)
    # a "." at character 64 or later sits in a window that starts mid-game
    assert pos.n_dropped_positions == int((labels.char_index >= 64).sum()) > 0
    kept = np.concatenate([pos.fit_rows, pos.test_rows])
    assert (labels.char_index[kept] < 64).all()


def test_command_writes_the_tidy_table_probe_and_figures(stores, tmp_path):
    import pandas as pd
    from clitools import run_cli

    out = tmp_path / "bg"
    args = ["boardgame", "--store", stores.moe_store, stores.dense_store, "--games", stores.games,
            "--layers", "1", "--names", "moe", "dense", "--out", out, "--quiet"]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1 illegal game(s)" in proc.stdout and "moe L1 expert/gated: coverage" in proc.stdout
    table = pd.read_csv(out / "boardgame.csv", keep_default_na=False)
    assert {"model", "layer", "space", "semantics", "function", "coverage", "chance_coverage",
            "coverage_threshold", "reconstruction", "reconstruction_threshold",
            "reconstruction_paper", "chance_reconstruction", "n_alive", "n_labelled"} \
        <= set(table.columns)
    series = set(zip(table["model"], table["space"], table["semantics"]))
    assert series == {("moe", "expert", "gated"), ("moe", "expert", "zero_filled"),
                      ("moe", "resid", ""), ("dense", "ffn", ""), ("dense", "resid", "")}
    assert len(table) == 5 * 23 and table["coverage"].between(0, 1).all()
    assert (table["coverage"] >= table["chance_coverage"] - 0.05).all()
    probe = pd.read_csv(out / "probe.csv")
    assert sorted(probe["model"]) == ["dense", "moe"] and probe["accuracy"].between(0, 1).all()
    figures = {p.name for p in (out / "figures").iterdir()}
    assert {"functions_L1.png", "functions_L1.svg", "board_L1.png", "board_L1.svg"} <= figures
    # a rerun is a skip; other settings without --overwrite are refused
    again = run_cli(*args)
    assert again.returncode == 0 and "already done" in again.stdout
    from clitools import assert_user_error

    assert_user_error(run_cli(*args, "--labelling", "paper"), "other settings", "--overwrite")


def test_bad_input_is_one_line(stores, tmp_path):
    from clitools import assert_user_error, run_cli

    base = ["boardgame", "--games", stores.games, "--out", tmp_path / "o", "--quiet"]
    assert_user_error(run_cli(*base, "--store", stores.moe_store, "--layers", "7"),
                      "layer 7 is not in the store")
    assert_user_error(run_cli(*base, "--store", stores.moe_store, "--spaces", "ffn"),
                      "space 'ffn' is not in the store")
    bad_games = tmp_path / "bad.txt"
    bad_games.write_text(";1.e4 e5\nthis is prose\n")
    assert_user_error(run_cli("boardgame", "--store", stores.moe_store, "--games", bad_games,
                              "--out", tmp_path / "o2", "--quiet"), "bad.txt:2 is not a game")
    other = tmp_path / "other.txt"
    other.write_text(";1.d4 d5\n")
    assert_user_error(run_cli("boardgame", "--store", stores.moe_store, "--games", other,
                              "--out", tmp_path / "o3", "--quiet"), "none of the store's games")
    text = tmp_path / "prose.txt"
    text.write_text("a bad feed 12 a cab 345 hh")  # chess characters, but prose
    text_store = capture_store(stores.dense, text, tmp_path / "text-store", ["ffn"])
    assert_user_error(run_cli(*base, "--store", text_store), "text corpus, not on chess games")
    assert not (tmp_path / "o" / "DONE").exists()
