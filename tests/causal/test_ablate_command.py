"""``moelens causal ablate`` end to end: killed with SIGKILL, rerun, it writes the table an
unbroken run writes; untested experts and per-domain rows are in it; bad expert ids exit 2."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from clitools import assert_user_error, cli_env, run_cli

from moelens import cli


@pytest.fixture(scope="module")
def unbroken(planted_dirs, tmp_path_factory):
    """The sweep's arguments and the table of one unbroken single-process run."""
    args = ["causal", "ablate", "--model", str(planted_dirs["two_layers"]), "--corpus",
            str(planted_dirs["alpha_long"]), str(planted_dirs["beta_long"]), "--ctx", "16",
            "--batch_size", "1", "--no-figures", "--quiet", "--threads", "1"]
    whole = tmp_path_factory.mktemp("ablate") / "whole"
    threads = torch.get_num_threads()
    try:
        assert cli.main([*args, "--out", str(whole)]) == 0
    finally:
        torch.set_num_threads(threads)
    return args, whole


def test_sigkill_then_rerun_gives_the_table_of_an_unbroken_run(unbroken, tmp_path):
    args, whole = unbroken
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_torchrun_processes_give_the_table_of_one(unbroken, tmp_path):
    args, whole = unbroken
    out = tmp_path / "two"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), "-m", "moelens", *args, "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=cli_env({"OMP_NUM_THREADS": "1"}))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (out / "ablate.csv").read_bytes() == (whole / "ablate.csv").read_bytes()
