"""``moelens eval``: loss and perplexity of a saved model, printed and written as JSON."""

# ruff: noqa: F811  (pytest fixtures imported from train_fixtures are redefined as arguments)

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from train_fixtures import (  # noqa: F401 (pytest fixtures)
    backend,
    one_thread,
    text_token_dir,
    token_dir,
    trained_run,
    use_backend,
)

from moelens import cli


def test_model_dir_is_complete(trained_run):
    """The saved model carries the data's tokenizer, so it loads and captures on its own."""
    from tokenizers import Tokenizer

    model_dir = trained_run / "model"
    assert (model_dir / "config.json").exists()
    training = json.loads((model_dir / "training.json").read_text())
    assert training["ctx"] == 32 and training["iters"] == 20 and training["data_kind"] == "text"
    assert not (trained_run / "ckpt").exists()  # superseded by the model dir
    assert Tokenizer.from_file(str(model_dir / "tokenizer.json")).encode("w3 w7").ids == [3, 7]


def test_eval_whole_split_matches_a_direct_computation(trained_run, token_dir, tmp_path,
                                                       use_backend, capsys):
    out = tmp_path / "eval.json"
    code = cli.main(["eval", "--model", str(trained_run / "model"), "--data", str(token_dir),
                     "--out", str(out), "--quiet", "--device", "cpu", "--batch_size", "16"])
    assert code == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert f"val loss {result['loss']:.4f}" in printed and "perplexity" in printed
    assert result["perplexity"] == pytest.approx(math.exp(result["loss"]))
    assert result["nats_per_char"] == result["loss"]  # chess data: one token per character
    assert result["bits_per_token"] == pytest.approx(result["loss"] / math.log(2))

    # windows of the training context (32, from training.json), every val token predicted once
    model = use_backend.load_model(trained_run / "model").eval()
    ctx = 32
    val = np.asarray(use_backend.open_tokens(token_dir).val, dtype=np.int64)
    windows = [val[o:o + ctx + 1] for o in range(0, len(val) - ctx, ctx)]
    assert result["ctx"] == ctx and result["tokens"] == ctx * len(windows)
    rows = torch.from_numpy(np.stack(windows))
    with torch.no_grad():
        logits = model(input_ids=rows[:, :-1]).logits
    expected = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1))
    assert result["loss"] == pytest.approx(expected.item(), rel=1e-5)


def test_eval_block_windows_for_chess(trained_run, token_dir, use_backend, tmp_path):
    """With --ctx block_size-1 every window is one whole block (as the chess reference)."""
    out = tmp_path / "e.json"
    assert cli.main(["eval", "--model", str(trained_run / "model"), "--data", str(token_dir),
                     "--ctx", "99", "--quiet", "--device", "cpu", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["tokens"] == 40 * 99  # 4000 val tokens = 40 blocks


def test_eval_random_batches_and_train_split(trained_run, token_dir, use_backend, capsys):
    args = ["eval", "--model", str(trained_run / "model"), "--data", str(token_dir), "--quiet",
            "--device", "cpu", "--iters", "2", "--batch_size", "4", "--ctx", "32"]
    assert cli.main(args) == 0
    first = capsys.readouterr().out
    assert "over 256 tokens (ctx 32)" in first
    assert cli.main(args) == 0 and capsys.readouterr().out == first  # seeded windows
    assert cli.main(args + ["--split", "train"]) == 0
    assert capsys.readouterr().out.startswith("train loss")


def test_eval_rejects_a_context_longer_than_the_model(trained_run, token_dir, backend):
    from clitools import assert_user_error, run_cli

    limit = backend.load_model(trained_run / "model").config.n_positions
    proc = run_cli("eval", "--model", trained_run / "model", "--data", token_dir,
                   "--ctx", str(limit + 1), "--device", "cpu")
    assert_user_error(proc, f"{limit} positions", "--ctx")
