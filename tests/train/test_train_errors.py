"""Bad input to ``moelens train`` / ``moelens eval``: one line on stderr, exit 2, no traceback.

Every case runs ``moelens`` in its own process, as a user types it (``clitools.run_cli``).
"""

# ruff: noqa: F811  (pytest fixtures imported from train_fixtures are redefined as arguments)

from __future__ import annotations

import json
from pathlib import Path

import clitools as _root  # run_cli, assert_user_error
import pytest
import yaml
from train_fixtures import (  # noqa: F401 (pytest fixtures)
    backend,
    one_thread,
    text_token_dir,
    token_dir,
    trained_run,
)
from train_helpers import tiny_config

from moelens.config import to_dict
from moelens.training.command import run


def _train_error(*args, needles: tuple[str, ...]) -> None:
    _root.assert_user_error(_root.run_cli("train", *args), *needles)


def test_missing_data_dir_exit_2(tmp_path):
    proc = _root.run_cli("train", "--data", tmp_path / "nope", "--out", tmp_path / "run",
                         "--max_iters", "5", "--quiet")
    _root.assert_user_error(proc, "does not exist", "moelens data")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flags, needle", [
    (["--lr", "-1"], "lr=-1"),
    (["--batch_size", "0"], "batch_size=0 must be at least 1"),
    (["--max_tokens", "1000"], "exactly one of"),
    (["--min_lr", "1"], "min_lr=1.0 is above lr"),
    (["--beta2", "1.5"], "beta2"),
    (["--dtype", "fp16"], "fp16"),
    (["--model.ffn", "sparse"], "model.ffn"),
    (["--ctx", "many"], "ctx"),
    (["--warmup_iters", "-1"], "warmup_iters"),
    (["--lr", "nan"], "lr=nan"),
    (["--lr", "0", "--min_lr", "0"], "lr=0"),
    (["--grad_clip", "-1"], "grad_clip"),
    (["--stop_after", "0"], "stop_after"),
])
def test_nonsense_values_are_config_errors(tmp_path, flags, needle):
    _train_error("--data", tmp_path, "--out", tmp_path / "run", "--max_iters", "5", *flags,
                 needles=(needle,))
    assert not (tmp_path / "run").exists()


def test_missing_step_count_is_a_config_error(tmp_path):
    _train_error("--data", tmp_path, "--out", tmp_path / "run", needles=("exactly one of",))


def test_missing_required_paths(tmp_path):
    _train_error("--max_iters", "5", needles=("--data",))
    _root.assert_user_error(_root.run_cli("eval", "--data", tmp_path), "--model")


def test_eval_missing_model_exit_2(token_dir, tmp_path):
    proc = _root.run_cli("eval", "--model", tmp_path / "nope", "--data", token_dir)
    _root.assert_user_error(proc, "does not exist")


def _config_file(cfg, path: Path) -> Path:
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    return path


@pytest.mark.parametrize("damage", ["truncate_model", "truncate_state_unchecked", "lose_index"])
def test_corrupt_checkpoint_on_resume(token_dir, tmp_path, backend, damage):
    out = tmp_path / "run"
    cfg = tiny_config(token_dir, out, max_iters=8, stop_after=3, eval_interval=0)
    assert run(cfg, backend) == 0
    ckpt = out / "ckpt"
    index = json.loads((ckpt / "latest.json").read_text())
    if damage == "truncate_model":
        f = ckpt / index["model"]
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
        needles = ("corrupt", index["model"])
    elif damage == "truncate_state_unchecked":  # without a checksum the loader itself must fail
        f = ckpt / index["state"]
        f.write_bytes(f.read_bytes()[:100])
        del index["state_sha256"]
        (ckpt / "latest.json").write_text(json.dumps(index))
        needles = ("cannot be read", index["state"])
    else:
        (ckpt / "latest.json").write_text("{not json")
        needles = ("unreadable",)
    cfg.stop_after, cfg.resume = None, True
    _train_error("--config", _config_file(cfg, tmp_path / "c.yaml"), needles=needles)
    assert not (out / "DONE").exists()


def test_unfinished_run_needs_resume_or_overwrite(token_dir, tmp_path, backend):
    out = tmp_path / "run"
    cfg = tiny_config(token_dir, out, max_iters=8, stop_after=2, eval_interval=0)
    assert run(cfg, backend) == 0
    cfg.stop_after = None
    config = _config_file(cfg, tmp_path / "c.yaml")
    _train_error("--config", config, needles=("unfinished", "--resume", "--overwrite"))
    _train_error("--config", config, "--resume", "--seed", "1", needles=("cannot resume", "seed"))
    assert not (out / "DONE").exists()
    proc = _root.run_cli("train", "--config", config, "--overwrite")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "DONE").exists()


def test_init_from_missing_dir(token_dir, tmp_path):
    _train_error("--data", token_dir, "--out", tmp_path / "run", "--max_iters", "2",
                 "--init_from", tmp_path / "nope", needles=("init_from", "does not exist"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["eval", "train --init_from"])
def test_corrupt_saved_model_is_one_line(trained_run, text_token_dir, tmp_path, command):
    """A model.safetensors cut in half (a copy that stopped short) is a user error, not a crash."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(trained_run / "model", model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    if command == "eval":
        proc = _root.run_cli("eval", "--model", model, "--data", text_token_dir, "--device", "cpu",
                             "--quiet")
    else:
        proc = _root.run_cli("train", "--init_from", model, "--data", text_token_dir, "--out",
                             tmp_path / "run", "--max_iters", "2", "--ctx", "32", "--device",
                             "cpu", "--quiet")
    _root.assert_user_error(proc, "cannot load the model", str(model), "model.safetensors")


def test_a_model_preset_given_to_train_points_at_model_preset(tmp_path):
    for name in ("moex", "model-moex"):
        proc = _root.run_cli("train", "--preset", name, "--data", tmp_path, "--out",
                             tmp_path / "run", "--max_iters", "1")
        _root.assert_user_error(proc, "not a train preset" if "-" in name else "unknown train preset",
                                "--model.preset moex")
    assert not (tmp_path / "run").exists()


def test_router_eps_is_set_from_the_command_line(token_dir, tmp_path):
    flags = ["--data", token_dir, "--ctx", "32", "--batch_size", "4", "--max_iters", "1",
             "--eval_interval", "0", "--eval_iters", "1", "--device", "cpu", "--quiet",
             "--model.preset", "moex", "--model.n_layer", "1", "--model.n_head", "2",
             "--model.n_embd", "16", "--model.num_experts", "4", "--model.expert_width", "8"]
    proc = _root.run_cli("train", *flags, "--out", tmp_path / "bad", "--model.router_eps", "0")
    _root.assert_user_error(proc, "router_eps=0")
    proc = _root.run_cli("train", *flags, "--out", tmp_path / "run", "--model.router_eps", "1e-3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert saved["router_eps"] == pytest.approx(1e-3)
