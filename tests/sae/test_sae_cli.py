"""``moelens sae train`` as a user runs it: bad input is one line and exit 2; a run killed with
SIGKILL resumes, when the same command is run again, to exactly the uninterrupted result."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from clitools import ROOT, assert_user_error, cli_env, run_cli
from sae_store import topk_config
from safetensors.torch import load_file

from moelens.store import ActivationStore


@pytest.mark.parametrize("args, needles", [
    (["--layer", "1", "--space", "shared"], ["space 'shared' is not in the store", "ffn, resid"]),
    (["--layer", "0", "--space", "expert"], ["'expert' has no dense", "dense space"]),
    (["--layer", "7"], ["layer 7 is not in the store", "[0, 1]"]),
    (["--layer", "1", "--batch_size", "100000"], ["batch_size 100000", "3686 training tokens"]),
    (["--layer", "1", "--latents", "128", "--k", "4"], ["holds an SAE trained with other settings",
                                                          "k was 3, now 4", "--overwrite"]),
])
def test_bad_input_is_one_line(trained, args, needles):
    before = sorted(p.relative_to(trained.root) for p in trained.root.rglob("*"))
    proc = run_cli("sae", "train", "--store", trained.root, *args)
    assert_user_error(proc, *needles)
    assert sorted(p.relative_to(trained.root) for p in trained.root.rglob("*")) == before


def _command(root, name):
    return ["sae", "train", "--store", str(root), "--layer", "1", "--name", name, "--latents", "128",
            "--k", "3", "--steps", "300", "--batch_size", "256", "--lr", "0.01", "--lr_warmup", "20",
            "--log_every", "20", "--ckpt_every", "100", "--dead_tokens", "2000", "--quiet"]


def test_sigkill_then_rerun_equals_an_uninterrupted_run(trained, tmp_path, one_thread):
    from moelens.analysis.sae import train_sae

    root = tmp_path / "store"
    shutil.copytree(trained.root, root)
    proc = subprocess.Popen([sys.executable, "-m", "moelens", *_command(root, "sae_kill")], cwd=ROOT,
                            env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ckpt = root / "derived/L001/sae_kill.training/checkpoint.pt"
    deadline = time.monotonic() + 300
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, err[-2000:])
    state = torch.load(ckpt, weights_only=True)
    assert 0 < state["step"] < 300 and not (root / "derived/L001/sae_kill").exists()
    assert (state["since_fired"] > 2000).any()  # dead latents (AuxK at work) when it was killed
    assert "sae_kill" not in ActivationStore.open(root).spaces(1)  # nothing that looks complete

    again = run_cli(*_command(root, "sae_kill"))
    assert again.returncode == 0, again.stderr[-2000:]
    assert "saved to" in again.stdout and not ckpt.parent.exists()
    straight = train_sae(topk_config(root, name="sae_straight", steps=300, ckpt_every=20, dead_tokens=2000))

    a = load_file(str(straight.path / "sae.safetensors"))
    b = load_file(str(root / "derived/L001/sae_kill/sae.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    metrics = [json.loads((root / f"derived/L001/{n}/metrics.json").read_text())
               for n in ("sae_kill", "sae_straight")]
    assert metrics[0] == metrics[1]  # the whole loss curve included: nothing lost or repeated
