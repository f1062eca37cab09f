"""Resume after a kill, corrupt shards, foreign format versions, and a two-node capture."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
import torch

from moelens import cli
from moelens.store import ActivationStore, StoreError


def _checksums(root):
    manifest = json.loads((root / "manifest.json").read_text())
    return {rel: e["sha256"] for r in manifest["shards"] for rel, e in r["files"].items()}


def test_resume_after_kill_gives_identical_store(tmp_path, capture_args, capsys):
    capture_args = [*capture_args, "--tokens", "320"]
    full, part = tmp_path / "full", tmp_path / "part"
    assert cli.main(["capture", *capture_args, "--out", str(full)]) == 0
    assert cli.main(["capture", *capture_args, "--out", str(part), "--stop_after_shards", "3"]) == 0
    assert not (part / "manifest.json").exists()
    with pytest.raises(StoreError, match="unfinished capture"):
        ActivationStore.open(part)
    done = sorted(p.name for p in (part / "shards").iterdir())
    assert done == ["00000.json", "00001.json", "00002.json"]
    # a shard damaged on disk and a shard half written when the process died are both redone
    victim = part / "L001" / "expert" / "00001.values.npy"
    victim.write_bytes(victim.read_bytes()[:-7])
    (part / "L000" / "resid" / "00003.npy").write_bytes(b"half")
    assert cli.main(["capture", *capture_args, "--out", str(part)]) == 0
    assert _checksums(part) == _checksums(full)
    assert len(_checksums(full)) > 30
    ActivationStore.open(part).verify()
    capsys.readouterr()
    assert cli.main(["capture", *capture_args, "--out", str(part)]) == 0
    assert "already complete" in capsys.readouterr().out
    (part / "manifest.json").write_text('{"format": "moelens-activ')  # a torn manifest
    with pytest.raises(StoreError, match="unreadable"):
        ActivationStore.open(part)
    assert cli.main(["capture", *capture_args, "--out", str(part)]) == 0
    assert "wrote 320 tokens" in capsys.readouterr().out and _checksums(part) == _checksums(full)
    assert cli.main(["capture", *capture_args, "--out", str(part), "--dtype", "fp32"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_corrupt_shard_and_foreign_version(tmp_path, capture_args):
    out = tmp_path / "s"
    assert cli.main(["capture", *capture_args, "--layers", "0", "--spaces", "expert", "resid",
                     "--out", str(out)]) == 0
    store = ActivationStore.open(out)
    store.verify()
    bad = out / "L000" / "expert" / "00002.values.npy"
    data = bytearray(bad.read_bytes())
    data[-3] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="L000/expert/00002.values.npy"):
        ActivationStore.open(out).verify()
    fresh = ActivationStore.open(out)
    with pytest.raises(StoreError, match="00002.values.npy.*corrupt"):
        for e in range(fresh.num_experts(0)):
            fresh.expert(0, e)
    ActivationStore.open(out).dense(0, "resid")  # other files still read
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["format_version"] = 99
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="format version 99"):
        ActivationStore.open(out)
    assert cli.main(["capture", *capture_args, "--layers", "0", "--spaces", "expert", "resid",
                     "--out", str(out)]) == 2  # never resumed into, never taken as complete
    with pytest.raises(StoreError, match="no activation store"):
        ActivationStore.open(tmp_path / "nothing")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_node_capture_equals_one_process(tmp_path, capture_args):
    """The multi-node recipe of docs/scale.md, with two local launchers standing in for two nodes:
    each runs ``torchrun --nnodes 2 --node_rank R --nproc_per_node 1`` against one rendezvous
    address, both write the same --out (a filesystem the nodes share), each rank a slice of the
    shards; the store equals a one-process capture."""
    from store_helpers import subprocess_env

    env = subprocess_env()
    one, two = tmp_path / "one", tmp_path / "two"
    args = [*capture_args, "--tokens", "300"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the subprocesses (OMP_NUM_THREADS=1): same float reductions
    try:
        assert cli.main(["capture", *args, "--out", str(one)]) == 0
    finally:
        torch.set_num_threads(threads)
    port = str(_free_port())
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
                               "--node_rank", str(r), "--nproc_per_node", "1", "--master_addr", "127.0.0.1",
                               "--master_port", port, "-m", "moelens", "capture", *args, "--out", str(two)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for r in (0, 1)]
    outs = [n.communicate(timeout=300) for n in nodes]
    for n, (_, err) in zip(nodes, outs):
        assert n.returncode == 0, err[-3000:]
    assert "wrote 300 tokens" in outs[0][0]
    assert _checksums(one) == _checksums(two)
    m1, m2 = (json.loads((d / "manifest.json").read_text()) for d in (one, two))
    assert m1["n_tokens"] == m2["n_tokens"] == 300 and len(m1["shards"]) >= 4
    assert m1["documents"] == m2["documents"]


def test_a_faulty_adapter_never_leaves_a_complete_shard(tmp_path, capture_args):
    from store_helpers import ADAPTER

    from moelens.capture.command import CaptureConfig, run
    from moelens.config import parse

    # the test-only adapter (tests/capture/store/olmoe_standin.py) drops one layer's routing
    args = [a for a in capture_args if a not in ("--adapter", ADAPTER)]
    args += ["--adapter", "olmoe_standin:make_faulty_adapter"]
    cfg = parse(CaptureConfig, [*args, "--out", str(tmp_path / "s")], prog="t")
    with pytest.raises(RuntimeError, match="did not report every token for L1 routing"):
        run(cfg)
    assert not (tmp_path / "s" / "manifest.json").exists()
    assert not list((tmp_path / "s").glob("shards/*.json"))


@pytest.mark.parametrize("spare", [True, False], ids=["background-writer", "foreground-parallel"])
def test_both_writing_modes_give_the_same_store(tmp_path, capture_args, monkeypatch, spare):
    """Shards written behind the forward or in the foreground on a pool: identical files and records."""
    from moelens.capture import capture as capture_mod

    capture_args = [*capture_args, "--tokens", "320"]
    assert cli.main(["capture", *capture_args, "--out", str(tmp_path / "ref")]) == 0
    monkeypatch.setattr(capture_mod, "_spare_cores", lambda device: spare)
    assert cli.main(["capture", *capture_args, "--out", str(tmp_path / "mode")]) == 0
    ref, mode = (json.loads((tmp_path / d / "manifest.json").read_text())["shards"] for d in ("ref", "mode"))
    assert [list(r["files"].items()) for r in mode] == [list(r["files"].items()) for r in ref]
    assert len(ref) > 1
    ActivationStore.open(tmp_path / "mode").verify()
