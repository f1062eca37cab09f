"""A capture process killed with SIGKILL resumes, when rerun, into the store an unbroken run writes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import torch

from moelens import cli


def _files(root):
    """sha256 of every file of a store directory, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_sigkill_then_rerun_gives_the_store_of_an_unbroken_run(tmp_path, model_dir):
    from store_helpers import TEXT, subprocess_env

    corpus = tmp_path / "long.txt"
    corpus.write_text(TEXT * 40)  # about 6400 tokens: 100 shards of 64
    args = ["capture", "--model", str(model_dir), "--corpus", str(corpus), "--ctx", "40",
            "--batch_size", "3", "--shard_tokens", "64", "--quiet"]
    env = {**subprocess_env(), "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "moelens", *args, "--out", str(killed)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not (killed / "shards" / "00000.json").exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no shard completed in time"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "manifest.json").exists()  # it died mid-capture
    n_done = len(list((killed / "shards").glob("*.json")))
    assert n_done >= 1

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert rerun.returncode == 0, rerun.stderr[-2000:]

    whole = tmp_path / "whole"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the subprocesses: the same float reductions
    try:
        assert cli.main([*args, "--out", str(whole)]) == 0
    finally:
        torch.set_num_threads(threads)
    got, want = _files(killed), _files(whole)
    shard_files = [rel for rel in want if rel not in ("manifest.json", "capture.json")]
    assert len(shard_files) > 10 * n_done and len(shard_files) > 500
    assert {r: got.get(r) for r in shard_files} == {r: want[r] for r in shard_files}
    assert sorted(got) == sorted(want)  # nothing left over from the killed process
    m_got, m_want = (json.loads((d / "manifest.json").read_text()) for d in (killed, whole))
    assert m_got["shards"] == m_want["shards"] and m_got["documents"] == m_want["documents"]
    assert m_got["corpus"] == m_want["corpus"] and m_got["fingerprint"] == m_want["fingerprint"]
