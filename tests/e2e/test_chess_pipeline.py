"""A moelens model from ``moelens train`` (tiny MoE-X, 5 steps on built-in chess games) is
captured by ``moelens capture`` and probed with the chess concepts by ``moelens probe``."""

from __future__ import annotations

import pandas as pd
from clitools import run_cli

from moelens.data.chess import decode
from moelens.data.tokens import TokenData


def _ok(proc) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_train_capture_probe_chess(tmp_path):
    _ok(run_cli("data", "chess", "--out", tmp_path / "data", "--n_games", "40", "--player", "builtin",
                "--workers", "1", "--quiet"))
    _ok(run_cli("train", "--data", tmp_path / "data", "--out", tmp_path / "run", "--model.n_layer", "2",
                "--model.n_head", "2", "--model.n_embd", "32", "--model.num_experts", "4",
                "--model.top_k", "2", "--model.expert_width", "16", "--ctx", "128", "--batch_size", "4",
                "--max_iters", "5", "--eval_interval", "5", "--eval_iters", "1", "--device", "cpu",
                "--quiet"))
    text = decode(TokenData(tmp_path / "data").train[:8000].tolist())
    games = [";" + g.strip() for g in text.split(";") if g.strip()]
    (tmp_path / "games.txt").write_text("\n".join(games) + "\n")
    _ok(run_cli("capture", "--model", tmp_path / "run" / "model", "--corpus", tmp_path / "games.txt",
                "--out", tmp_path / "store", "--ctx", "256", "--quiet"))
    _ok(run_cli("probe", "--store", tmp_path / "store", "--out", tmp_path / "probe", "--concepts",
                "chess", "--ks", "1", "4", "--seeds", "42", "--bootstrap", "50", "--quiet"))
    df = pd.read_parquet(tmp_path / "probe" / "probe.parquet")
    units = df[df.control == "none"]
    assert set(units.space) == {"expert"} and set(units.expert) == {0, 1, 2, 3}
    ok = units[units.status == "ok"]
    assert {"move_dot", "piece_letter", "file_char"} <= set(ok.concept)
    assert ((ok.f1 >= 0) & (ok.f1 <= 1)).all()
