"""The whole road on a toy setup, through the CLI as a user runs it:

chess games → train a tiny MoE-X and a tiny dense model → capture both → k-sparse probing with
chess concepts → comparison figures. Each step reads only what the previous one wrote.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from clitools import run_cli

COLUMNS = {"model", "concept", "group", "layer", "space", "expert", "k", "f1", "precision",
           "recall", "n_pos", "n_neg", "status", "semantics", "selection", "seed"}
TINY = ["--model.n_layer", "2", "--model.n_head", "2", "--model.n_embd", "32"]
TRAIN = ["--ctx", "128", "--batch_size", "8", "--max_iters", "30", "--lr", "3e-3",
         "--warmup_iters", "3", "--eval_interval", "30", "--eval_iters", "2",
         "--log_interval", "10", "--ckpt_interval", "0", "--device", "cpu", "--dtype", "fp32",
         "--cpu_threads", "1", "--quiet"]
CAPTURE_TOKENS = 3000  # one character of the chess vocabulary is one token
CONCEPTS = ["move_dot", "move_number", "piece_letter", "file_char", "rank_char", "white_move"]


def ok(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def chess_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    data = root / "data"
    # no book (an installed gnuchess book would change the games) and a validation split of 15
    # games, so that games_val.txt holds the CAPTURE_TOKENS capture is asked for
    ok(run_cli("data", "chess", "--out", data, "--n_games", "75", "--val_fraction", "0.2",
               "--player", "builtin", "--book", "none", "--workers", "1", "--seed", "0",
               "--quiet"))
    val_chars = sum(len(g) for g in (data / "games_val.txt").read_text().splitlines())
    assert val_chars >= CAPTURE_TOKENS, f"only {val_chars} validation characters"
    models = {
        "moex": ["--model.preset", "moex", "--model.num_experts", "4", "--model.top_k", "2",
                 "--model.expert_width", "32"],
        "dense": ["--model.preset", "dense-gelu", "--model.ffn_width", "64"],
    }
    out = {}
    for name, spec in models.items():
        run = root / name
        ok(run_cli("train", "--data", data, "--out", run, *spec, *TINY, *TRAIN))
        store = root / f"{name}-store"
        ok(run_cli("capture", "--model", run / "model", "--corpus", data / "games_val.txt",
                   "--tokens", str(CAPTURE_TOKENS), "--ctx", "128", "--out", store, "--quiet"))
        probe = root / f"{name}-probe"
        ok(run_cli("probe", "--store", store, "--concepts", *CONCEPTS, "--ks", "1", "2", "4",
                   "--seeds", "0", "--bootstrap", "100", "--out", probe, "--quiet"))
        out[name] = (run, store, probe)
    return root, out


def test_capture_records_what_each_model_has(chess_runs):
    _, runs = chess_runs
    moex = json.loads((runs["moex"][1] / "manifest.json").read_text())
    dense = json.loads((runs["dense"][1] / "manifest.json").read_text())
    assert moex["n_tokens"] == dense["n_tokens"] == CAPTURE_TOKENS
    assert "expert" in json.dumps(moex["spaces"]) and "ffn" in json.dumps(dense["spaces"])


def test_probe_tables_have_expert_and_ffn_units(chess_runs):
    _, runs = chess_runs
    for name, space in (("moex", "expert"), ("dense", "ffn")):
        probe = runs[name][2]
        table = pd.read_parquet(probe / "probe.parquet")
        assert COLUMNS <= set(table.columns)
        assert len(pd.read_csv(probe / "probe.csv")) == len(table)
        main = table[table["space"] == space]
        fitted = main[main["status"] == "ok"]
        assert len(fitted) > 0 and fitted["f1"].between(0, 1).all()
        assert set(fitted["k"]) == {1, 2, 4}
        if space == "expert":
            assert fitted["expert"].nunique() > 1
        # "." is one character of the vocabulary: some unit of a trained model finds it
        dots = fitted[(fitted["concept"] == "move_dot") & (fitted["selection"] == "paper")]
        assert dots["f1"].max() > 0.9
        summary = json.loads((probe / "summary.json").read_text())
        assert summary["ks"] == [1, 2, 4]


def test_rerun_is_skipped_and_overwrite_does_not_duplicate(chess_runs):
    _, runs = chess_runs
    _, store, probe = runs["dense"]
    before = pd.read_parquet(probe / "probe.parquet")
    args = ["probe", "--store", store, "--concepts", *CONCEPTS, "--ks", "1", "2", "4",
            "--seeds", "0", "--bootstrap", "100", "--out", probe, "--quiet"]
    ok(run_cli(*args))
    ok(run_cli(*args, "--overwrite"))
    after = pd.read_parquet(probe / "probe.parquet")
    assert len(after) == len(before)
    pd.testing.assert_frame_equal(after.reset_index(drop=True), before.reset_index(drop=True))


def test_compare_draws_figures(chess_runs):
    root, runs = chess_runs
    out = root / "compare"
    ok(run_cli("probe", "--compare", runs["moex"][2], runs["dense"][2], "--out", out, "--quiet"))
    figures = list(out.rglob("*.png")) + list(out.rglob("*.svg"))
    names = {p.stem for p in figures}
    # mean best F1 vs k, per-concept MoE-vs-dense scatter at k=1, k=1 F1 vs routing density,
    # experts within 95% of the best: each as PNG and SVG
    assert {"compare_f1_vs_k", "compare_scatter_k1", "compare_density_k1",
            "compare_experts_within_95"} <= names
    assert len(figures) == 2 * len(names)
    assert all(p.stat().st_size > 1000 for p in figures)


def test_bad_probe_input_on_a_real_store_is_one_line(chess_runs, tmp_path):
    from clitools import assert_user_error

    _, runs = chess_runs
    store = runs["moex"][1]
    out = tmp_path / "bad"
    assert_user_error(run_cli("probe", "--store", store, "--concepts", "no_such_concept",
                              "--out", out), "unknown concept")
    assert_user_error(run_cli("probe", "--store", store, "--spaces", "shared", "--concepts",
                              "move_dot", "--out", out), "spaces")
    assert_user_error(run_cli("probe", "--store", store, "--ks", "128", "--concepts",
                              "move_dot", "--out", out), "ks")
    assert not (out / "probe.parquet").exists() and not (out / "DONE").exists()
