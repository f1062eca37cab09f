"""``moelens causal ablate`` end to end: killed with SIGKILL, rerun, it writes the table an
unbroken run writes; untested experts and per-domain rows are in it; bad expert ids exit 2."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import torch
from clitools import assert_user_error, cli_env, run_cli

from moelens import cli


def test_sigkill_then_rerun_gives_the_table_of_an_unbroken_run(planted_dirs, tmp_path):
    args = ["causal", "ablate", "--model", str(planted_dirs["two_layers"]), "--corpus",
            str(planted_dirs["alpha_long"]), str(planted_dirs["beta_long"]), "--ctx", "16",
            "--batch_size", "1", "--no-figures", "--quiet", "--threads", "1"]
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "moelens", *args, "--out", str(killed)]
    proc = subprocess.Popen(cmd, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not list(killed.glob("parts/*/L0_*.json")):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no layer finished in time"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "ablate.csv").exists() and not (killed / "DONE").exists()
    assert not list(killed.glob("parts/*/L1_*.json")), "the run finished before it was killed"
    rerun = subprocess.run(cmd, env=cli_env(), capture_output=True, text=True, timeout=600, check=False)
    assert rerun.returncode == 0, rerun.stderr[-2000:]

    whole = tmp_path / "whole"
    threads = torch.get_num_threads()
    try:
        assert cli.main([*args, "--out", str(whole)]) == 0
    finally:
        torch.set_num_threads(threads)
    assert (killed / "ablate.csv").read_bytes() == (whole / "ablate.csv").read_bytes()
    assert not (killed / "parts").exists()
    table = pd.read_csv(whole / "ablate.csv")
    assert set(table["domain"]) == {"all", "alpha", "beta"}
    assert len(table) == 2 * 6 * 3  # layers x experts x (all + 2 domains)
    for _, r in table.iterrows():
        assert (r["status"] == "untested") == (r["tokens_routed"] == 0)
        assert math.isnan(r["delta_loss"]) == (r["status"] == "untested")
    assert (table["status"] == "tested").any()


def test_unknown_expert_or_layer_exits_2(planted_dirs, tmp_path):
    base = ["causal", "ablate", "--model", planted_dirs["domain"], "--corpus", planted_dirs["alpha"],
            "--out", tmp_path / "bad"]
    assert_user_error(run_cli(*base, "--experts", "9"), "unknown expert id", "0..7")
    assert not (tmp_path / "bad").exists()
