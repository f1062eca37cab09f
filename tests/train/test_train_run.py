"""End-to-end training runs on a tiny model: learning, run directory, exact resume.

Resuming after a real SIGKILL is tested in test_train_kill.py; the refusals to continue an
unfinished run without --resume or with other settings in test_train_errors.py.
"""

# ruff: noqa: F811  (pytest fixtures imported from train_fixtures are redefined as arguments)

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import (  # noqa: F401 (pytest fixtures)
    backend,
    make_model,
    one_thread,
    text_token_dir,
    token_dir,
    trained_run,
)
from train_helpers import make_backend, tiny_config, tiny_spec

from moelens.training.command import run
from moelens.training.metrics import MetricsLog


def _weights(run_dir):
    return load_file(str(run_dir / "model" / "model.safetensors"))


def _losses(run_dir):
    return [(r["iter"], r.get("loss"), r.get("val_loss")) for r in MetricsLog(run_dir).read()]


def test_training_lowers_val_loss_and_fills_the_run_dir(token_dir, tmp_path, backend, capsys):
    out = tmp_path / "run"
    cfg = tiny_config(token_dir, out, max_iters=40, eval_interval=20, ckpt_interval=0)
    assert run(cfg, backend) == 0
    printed = capsys.readouterr().out
    assert "val loss" in printed and str(out / "model") in printed

    records = MetricsLog(out).read()
    vals = [r["val_loss"] for r in records if "val_loss" in r]
    assert [r["iter"] for r in records if "val_loss" in r] == [0, 20, 40]
    # uniform guessing over 32 tokens is ln 32 = 3.47 nats; the data's floor is about 0.7
    assert vals[-1] < vals[0] - 1.0 and vals[-1] < 0.6 * math.log(32), vals
    last = records[-1]
    assert last["iter"] == 40 and last["tokens"] == 40 * 8 * 32
    for key in ("loss", "ce", "aux_loss", "lr", "grad_norm", "tokens_per_s"):
        assert math.isfinite(last[key]), key
    assert last["lr"] == pytest.approx(cfg.min_lr)
    moe = last["moe"]
    assert sorted(moe) == ["0", "1"]
    for stats in moe.values():
        assert len(stats["load"]) == 4 and sum(stats["load"]) == pytest.approx(1.0)
        assert stats["router_entropy"] >= 0 and stats["l0"] > 0

    summary = json.loads((out / "summary.json").read_text())
    assert summary["val_loss"] == pytest.approx(vals[-1])
    assert summary["val_perplexity"] == pytest.approx(math.exp(vals[-1]))
    assert (out / "DONE").exists() and (out / "model" / "config.json").exists()
    provenance = json.loads((out / "config.json").read_text())
    assert provenance["config"]["model"]["n_layer"] == 2 and provenance["seed"] == 0
    assert not list(out.glob(".*tmp*")), "temporary files left behind"

    # a finished run is skipped (nothing retrained), and --overwrite trains again
    before = (out / "model" / "model.safetensors").stat().st_mtime_ns
    assert run(cfg, backend) == 0
    assert "already finished" in capsys.readouterr().out
    assert (out / "model" / "model.safetensors").stat().st_mtime_ns == before
    cfg.overwrite, cfg.max_iters = True, 4
    assert run(cfg, backend) == 0
    assert MetricsLog(out).read()[-1]["iter"] == 4


# dropout on, so resuming must restore the RNG too; two micro-steps per step
COMMON = dict(max_iters=12, ckpt_interval=5, eval_interval=5, grad_accum=2,
              model=tiny_spec(dropout=0.1))


@pytest.fixture(scope="module")
def straight(token_dir, tmp_path_factory):
    """The uninterrupted reference run."""
    out = tmp_path_factory.mktemp("straight") / "run"
    assert run(tiny_config(token_dir, out, **COMMON), make_backend()) == 0
    return out


def test_stop_and_resume_is_bitwise_identical(token_dir, tmp_path, backend, straight):
    common, split = COMMON, tmp_path / "split"
    assert run(tiny_config(token_dir, split, stop_after=7, **common), backend) == 0
    assert not (split / "DONE").exists() and not (split / "model").exists()
    assert run(tiny_config(token_dir, split, resume=True, **common), backend) == 0

    a, b = _weights(straight), _weights(split)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _losses(straight) == _losses(split)


def test_init_from_continues_a_saved_model(trained_run, text_token_dir, tmp_path, backend):
    """Training from a saved model dir starts at that model's validation loss."""
    finished = json.loads((trained_run / "summary.json").read_text())
    out = tmp_path / "continued"
    cfg = tiny_config(text_token_dir, out, init_from=trained_run / "model", max_iters=2,
                      eval_interval=1)
    cfg.model = type(cfg.model)()  # no architecture overrides with init_from
    assert run(cfg, backend) == 0
    first = MetricsLog(out).read()[0]
    assert first["iter"] == 0 and first["val_loss"] == pytest.approx(finished["val_loss"], rel=1e-6)


def test_bf16_autocast_on_cpu(token_dir, tmp_path, backend):
    out = tmp_path / "bf16"
    assert run(tiny_config(token_dir, out, max_iters=3, dtype="bf16", eval_interval=0), backend) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dtype"] == "bf16" and math.isfinite(summary["val_loss"])
    assert all(math.isfinite(r["loss"]) for r in MetricsLog(out).read())
