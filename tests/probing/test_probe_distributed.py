"""``torchrun --nproc_per_node 2 -m moelens probe``: the work items are split over two processes
(gloo, CPU) and the merged table and summary are exactly those of one process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pandas as pd
import pytest
from clitools import cli_env, run_cli

from moelens.capture import synthetic


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """2 MoE layers x 16 experts (two work items each), 4 planted concepts, 3,000 tokens."""
    root = tmp_path_factory.mktemp("dist") / "store"
    return synthetic.write(root, n_tokens=3000, layers=[0, 1], num_experts=16, top_k=4, width=32,
                           hidden=16, n_concepts=4, shard_tokens=700, doc_tokens=100)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_give_the_one_process_table(store, tmp_path):
    args = ["probe", "--store", str(store.root), "--concepts", *store.concepts, "--ks", "1", "4", "16",
            "--seeds", "42", "--bootstrap", "20", "--no-figures", "--quiet"]
    one = run_cli(*args, "--out", tmp_path / "one")
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", str(_free_port()), "-m", "moelens", *args,
                          "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, env=cli_env(), timeout=600, check=False)
    assert two.returncode == 0, two.stderr[-3000:]
    a = pd.read_parquet(tmp_path / "one" / "probe.parquet")
    b = pd.read_parquet(tmp_path / "two" / "probe.parquet")
    # rank 0 merges only parts on disk and refuses a missing one: rank 1 did its items
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert set(a.expert) == set(range(16)) and set(a.layer) == {0, 1}
    assert (a[(a.control == "none") & (a.selection == "paper") & (a.k == 1)].f1.max()) > 0.8  # planted
    s1, s2 = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("one", "two"))
    assert s1 == s2
    assert not (tmp_path / "two" / "parts").exists() and (tmp_path / "two" / "DONE").exists()
