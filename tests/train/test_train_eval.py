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
    model_dir = trained_run / "model"
    assert (model_dir / "config.json").exists()
    assert (model_dir / "tokenizer.json").read_text() == '{"stand-in": "tokenizer"}'


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

    # every val token predicted once, in windows of the model's 64 positions
    model = use_backend.load_model(trained_run / "model").eval()
    val = np.asarray(use_backend.open_tokens(token_dir).val, dtype=np.int64)
    windows = [val[o:o + 65] for o in range(0, len(val) - 64, 64)]
    assert result["ctx"] == 64 and result["tokens"] == 64 * len(windows)
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
    code = cli.main(["eval", "--model", str(trained_run / "model"), "--data", str(token_dir),
                     "--ctx", "65", "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "64 positions" in err[0]
