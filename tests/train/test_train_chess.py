"""Training on real chess games lowers the validation loss, for each of the three model kinds.

The games come from ``moelens data chess --player builtin`` as a user runs it (no Stockfish
needed), one 128-character block per game. The models are tiny and train for 40 steps, enough
to go well below the uniform guess over the 32 characters (ln 32 = 3.47 nats) that an
initialised model makes: the characters of a move list are far from uniform.
"""

# ruff: noqa: F811  (pytest fixtures imported from train_fixtures are redefined as arguments)

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from clitools import run_cli
from train_fixtures import one_thread  # noqa: F401 (pytest fixture)
from train_helpers import make_backend, tiny_config, tiny_spec

from moelens.training.command import run


@pytest.fixture(scope="module")
def chess_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("chess") / "data"
    proc = run_cli("data", "chess", "--player", "builtin", "--n_games", "48", "--workers", "1",
                   "--max_plies", "80", "--block_size", "128", "--val_fraction", "0.25",
                   "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["kind"] == "chess" and meta["n_val"] >= 8 * 128
    return out


@pytest.mark.parametrize("preset", ["dense-gelu", "switch", "moex"])
def test_training_on_chess_lowers_val_loss(chess_dir, tmp_path, preset):
    out = tmp_path / "run"
    spec = tiny_spec(preset=preset, ffn_width=64)
    cfg = tiny_config(chess_dir, out, model=spec, ctx=127, batch_size=8, max_iters=40,
                      eval_interval=40, eval_iters=2, log_interval=10, ckpt_interval=0)
    assert run(cfg, make_backend()) == 0
    summary = json.loads((out / "summary.json").read_text())
    start, end = summary["val_loss_start"], summary["val_loss"]
    assert start == pytest.approx(math.log(32), abs=0.3)  # an initialised model guesses evenly
    assert end < start - 0.8, (preset, start, end)  # measured: 1.4 to 1.6 nats lower
