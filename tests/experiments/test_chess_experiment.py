"""``moelens experiment chess`` end to end on a tiny setup, killed with SIGKILL half-way and
resumed: the finished models are not trained again, and the report has the paper's tables."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pandas as pd
from clitools import ROOT, assert_user_error, cli_env, run_cli

from moelens.data.chess.random_games import random_games

TINY = """\
games: {n_games: 0, import_files: [GAMES], eval_games: 16, random_games: 32, max_plies: 40,
        block_size: 128, workers: 1}
model: {n_layer: 2, n_head: 2, n_embd: 32, ffn_width: 64, num_experts: 4, top_k: 2,
        expert_width: 32}
train: {ctx: 127, batch_size: 8, max_iters: 8, continue_iters: 4, warmup_iters: 2,
        eval_iters: 1, ckpt_interval: 4, device: cpu, dtype: fp32, cpu_threads: 1}
score: {max_chars: 128, legal_prompts: 10, stats_games: 4, probe_steps: 50}
language: {enabled: true, max_docs_per_source: 4, sources: [python_stdlib], vocab_size: 300,
           n_layer: 1, n_embd: 32,
           ctx: 32, batch_size: 4, max_iters: 4}
sae: {steps: 20, batch_size: 64, expansion: 2, k: 4}
seeds: [0]
models: [dense_gelu, moex_upcycled, dense_random, dense_untrained]
"""


def test_tiny_experiment_end_to_end_resumes_after_sigkill(tmp_path):
    config, out, games = tmp_path / "tiny.yaml", tmp_path / "run", tmp_path / "games.txt"
    # imported games (random moves: played ones take a while to generate), as real games would be
    games.write_text("\n".join(random_games(64, seed=2, max_plies=40)) + "\n")
    config.write_text(TINY.replace("GAMES", str(games)))
    args = ["experiment", "chess", "--config", str(config), "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-m", "moelens", *args, "--quiet"], cwd=ROOT,
                            env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    first_done = out / "eval-dense_gelu-s0" / "DONE"
    later = out / "train-moex_upcycled-s0" / "config.json"
    deadline = time.monotonic() + 300
    while not (first_done.exists() and later.exists()) and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, err[-2000:])
    assert not (out / "report").exists()
    weights = out / "train-dense_gelu-s0" / "train" / "model" / "model.safetensors"
    before = weights.stat().st_mtime_ns, (out / "eval-dense_gelu-s0" / "results.json").read_text()

    again = run_cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "train dense_gelu-s0 (dense GELU MLP (the paper's GPT-2 baseline)) ... done before" \
        in again.stdout
    assert "evaluate dense_gelu-s0 ... done before" in again.stdout
    # the finished model was neither retrained nor re-evaluated
    assert (weights.stat().st_mtime_ns,
            (out / "eval-dense_gelu-s0" / "results.json").read_text()) == before

    summary = json.loads((out / "summary.json").read_text())
    assert {"games", "random-games", "train-moex_upcycled-s0", "eval-dense_random-s0",
            "lang-corpora", "lang-moex"} <= set(summary["stages"])
    report = out / "report"
    runs = pd.read_csv(report / "runs.csv")
    assert sorted(runs["model"]) == ["dense_gelu-s0", "dense_random-s0",
                                     "dense_untrained-s0", "moex_upcycled-s0"]
    for col in ("coverage", "chance_coverage", "reconstruction", "legal_move_rate"):
        assert runs[col].between(0, 1).all(), col
    moe = runs[runs["kind"] == "moex_upcycled"]
    assert (moe["router_entropy"] <= math.log(4) + 1e-6).all() and (moe["l0"] > 0).all()
    assert (moe["n_units"] == 4 * 32).all()
    board = pd.read_csv(report / "boardgame.csv")
    assert board["function"].nunique() == 23
    sae = board[board["model"] == "sae(dense_gelu-s0)"]
    assert set(sae["space"]) == {"sae"} and len(sae) == 23
    sae_result = json.loads((out / "sae" / "results.json").read_text())
    assert 0 < sae_result["l0"] <= 4 and 0 <= sae_result["dead_fraction"] <= 1
    probe = pd.read_csv(report / "probe.csv")
    assert set(probe[probe["model"] == "dense_random-s0"]["layer"]) == {0, 1}
    assert set(probe[probe["model"] == "dense_untrained-s0"]["layer"]) == {0, 1}
    _assert_untrained(out, config)
    lang = pd.read_csv(report / "language.csv")
    assert sorted(lang["kind"]) == ["dense_gelu", "moex", "switch"]
    assert (lang["perplexity"] > 1).all()
    tables = (report / "tables.md").read_text()
    for needle in ("Table 1", "Table 3", "Table 4", "Table 2", "0.608", "0.840", "Router entropy",
                   "Residual board probe", "SAE baseline"):
        assert needle in tables
    assert (report / "figures" / "headline.png").stat().st_size > 1000


def _assert_untrained(out, config):
    """The corrected probe control holds exactly the weights the trainer starts dense_gelu-s0
    from: built from the same spec under the same seed, never stepped."""
    import torch
    import yaml

    from moelens.config import from_dict
    from moelens.experiments.chess_config import ChessExperimentConfig
    from moelens.experiments.chess_models import ModelRun, train_config
    from moelens.models.saved import load_saved_model
    from moelens.training.backend import build_model, open_tokens

    cfg = from_dict(ChessExperimentConfig, yaml.safe_load(config.read_text()))
    data = out / "games" / "data"
    spec = train_config(ModelRun("dense_untrained", 0), cfg, data, out / "x", None)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        fresh = build_model(spec.model, int(open_tokens(data).meta["vocab_size"]),
                            spec.ctx).state_dict()
    saved = load_saved_model(out / "train-dense_untrained-s0" / "train" / "model").state_dict()
    trained = load_saved_model(out / "train-dense_gelu-s0" / "train" / "model").state_dict()
    assert fresh.keys() == saved.keys()
    assert all(torch.equal(fresh[k], saved[k]) for k in fresh)
    assert not all(torch.equal(trained[k], saved[k]) for k in fresh)


def test_bad_settings_are_one_line(tmp_path):
    base = ["experiment", "chess", "--out", str(tmp_path / "x")]
    assert_user_error(run_cli(*base, "--models", "dense", "moex"), "unknown model kind 'dense'")
    assert_user_error(run_cli(*base, "--model.layer", "4"), "not a layer of a 4-layer model")
    assert_user_error(run_cli(*base, "--score.max_chars", "512"), "max_chars 512")
    assert not (tmp_path / "x").exists()
