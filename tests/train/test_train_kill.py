"""A training process killed with SIGKILL resumes to exactly the uninterrupted result.

``moelens train`` runs as a user starts it, in its own process; once its first checkpoint is on
disk the process is killed (no chance to clean up, mid-step or mid-write), and the same command
is run again. Dropout is on, so the resumed run must restore the RNG as well as the weights,
optimizer and step. Final weights and every logged loss must equal those of a run that was
never interrupted, bitwise (CPU, one thread).
"""

# ruff: noqa: F811  (pytest fixtures imported from train_fixtures are redefined as arguments)

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from clitools import ROOT, cli_env, run_cli
from safetensors.torch import load_file
from train_fixtures import one_thread, token_dir  # noqa: F401 (pytest fixtures)

from moelens.training.metrics import MetricsLog


def _command(data: Path, out: Path) -> list[str]:
    # --resume from the start: a fresh directory starts, an interrupted one continues, so the
    # very same command line serves both
    return ["train", "--data", str(data), "--out", str(out), "--ctx", "32", "--batch_size", "8",
            "--max_iters", "150", "--grad_accum", "2", "--lr", "1e-2", "--min_lr", "1e-3",
            "--warmup_iters", "2", "--eval_interval", "50", "--eval_iters", "2",
            "--log_interval", "1", "--ckpt_interval", "10", "--device", "cpu", "--dtype", "fp32",
            "--cpu_threads", "1", "--seed", "3", "--quiet", "--resume",
            "--model.preset", "moex", "--model.n_layer", "2", "--model.n_head", "2",
            "--model.n_embd", "32", "--model.num_experts", "4", "--model.top_k", "2",
            "--model.expert_width", "16", "--model.dropout", "0.1"]


def _losses(out: Path) -> list[tuple]:
    return [(r["iter"], r.get("loss"), r.get("aux_loss"), r.get("val_loss"))
            for r in MetricsLog(out).read()]


def test_sigkill_then_rerun_equals_an_uninterrupted_run(token_dir, tmp_path):
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "moelens", *_command(token_dir, killed)],
                            cwd=ROOT, env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    pointer = killed / "ckpt" / "latest.json"
    deadline = time.monotonic() + 300
    while not pointer.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, err[-2000:])
    assert pointer.exists() and not (killed / "DONE").exists() and not (killed / "model").exists()
    steps_before = len(MetricsLog(killed).read())
    assert 0 < steps_before < 150

    again = run_cli(*_command(token_dir, killed))
    assert again.returncode == 0, again.stderr[-2000:]
    straight = tmp_path / "straight"
    ref = run_cli(*_command(token_dir, straight))
    assert ref.returncode == 0, ref.stderr[-2000:]

    a = load_file(str(straight / "model" / "model.safetensors"))
    b = load_file(str(killed / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _losses(killed) == _losses(straight)  # no lost or duplicated metrics lines
