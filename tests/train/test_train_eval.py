"""``moelens eval``: loss and perplexity of a saved model, printed and written as JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from moelens import cli


def test_model_dir_is_complete(trained_run):
    """The saved model carries the data's tokenizer, so it loads and captures on its own."""
    from tokenizers import Tokenizer

    model_dir = trained_run / "model"
    assert (model_dir / "config.json").exists()
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

    # windows as long as the model allows (stand-in: 64 positions; a moelens model: the block
    # size of 100 minus 1, and then one window per block), every val token predicted once
    model = use_backend.load_model(trained_run / "model").eval()
    ctx = min(model.config.n_positions, 99)
    val = np.asarray(use_backend.open_tokens(token_dir).val, dtype=np.int64)
    starts = range(0, len(val), 100) if ctx == 99 else range(0, len(val) - ctx, ctx)
    windows = [val[o:o + ctx + 1] for o in starts]
    assert result["ctx"] == ctx and result["tokens"] == ctx * len(windows)
    rows = torch.from_numpy(np.stack(windows))
    with torch.no_grad():
        logits = model(input_ids=rows[:, :-1]).logits
    expected = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), rows[:, 1:].reshape(-1))
    assert result["loss"] == pytest.approx(expected.item(), rel=1e-5)


def test_eval_random_batches_and_train_split(trained_run, token_dir, use_backend, capsys):
    args = ["eval", "--model", str(trained_run / "model"), "--data", str(token_dir), "--quiet",
            "--device", "cpu", "--iters", "2", "--batch_size", "4", "--ctx", "32"]
    assert cli.main(args) == 0
    first = capsys.readouterr().out
    assert "over 256 tokens (ctx 32)" in first
    assert cli.main(args) == 0 and capsys.readouterr().out == first  # seeded windows
    assert cli.main(args + ["--split", "train"]) == 0
    assert capsys.readouterr().out.startswith("train loss")


def test_eval_rejects_a_context_longer_than_the_model(trained_run, token_dir, use_backend, capsys):
    limit = use_backend.load_model(trained_run / "model").config.n_positions
    code = cli.main(["eval", "--model", str(trained_run / "model"), "--data", str(token_dir),
                     "--ctx", str(limit + 1), "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"{limit} positions" in err[0]
