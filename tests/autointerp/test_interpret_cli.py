"""``moelens interpret`` as a user runs it: an LLM endpoint end to end (outputs, warm cache, the
key never written), a killed run resuming unit by unit, and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from ai_chat_server import ChatServer
from clitools import assert_user_error, cli_env, run_cli

SECRET = "sk-test-7f3a9c-never-write-me"
SMALL = ["--n_explain", "10", "--n_test", "10", "--n_negative", "10", "--no-figures"]


def _llm_args(store, out, srv, *extra):
    return ["interpret", "--store", store, "--out", out, "--explainer", "llm", "--llm.model", "test-model",
            "--llm.base_url", srv.base_url, "--llm.api_key_env", "AUTOINTERP_TEST_KEY", *extra]


def _unit_files(out):
    return {p.name: p.read_bytes() for p in sorted((out / "units").glob("*.json"))}


def test_llm_end_to_end_warm_rerun_and_no_key_on_disk(planted_store, tmp_path):
    out = tmp_path / "run"
    with ChatServer() as srv:
        args = _llm_args(planted_store, out, srv, "--layer", "0", "--units", "0-2", "--scorers", "detection",
                         "fuzzing", "binary", "intruder", "--n_explain", "10", "--n_test", "10", "--n_negative", "10")
        proc = run_cli(*args, env={"AUTOINTERP_TEST_KEY": SECRET})
        assert proc.returncode == 0, proc.stderr[-2000:]
        sent = srv.count
        assert sent > 0 and all(h.get("Authorization") == f"Bearer {SECRET}" for _, h in srv.requests)
        assert "detection" in proc.stdout and "all-yes" in proc.stdout
        first = _unit_files(out)
        assert len(first) == 3
        for blob in first.values():
            rec = json.loads(blob)
            assert rec["explanation"]["text"] == "the animal words cat, dog and bird"
            assert set(rec["scores"]) == {"detection", "fuzzing", "binary", "intruder"}
            assert rec["scores"]["detection"]["calls"] and rec["examples"]["test"]
        animal = json.loads(first["L0.expert_out.E0.json"])["scores"]["detection"]["metrics"]
        assert animal["balanced_accuracy"] == 1.0
        summ = json.loads((out / "summary.json").read_text())
        assert summ["usage"]["requests"] == sent and summ["usage"]["failures"] == 0
        assert (out / "summary.csv").read_text().startswith("scorer,metric,units,mean,ci_low,ci_high,baseline")
        assert (out / "figures" / "deciles.png").stat().st_size > 0
        for path in out.rglob("*"):
            if path.is_file():
                assert SECRET not in path.read_text(errors="replace"), path
        # a rerun with a warm cache costs nothing and gives identical results
        again = run_cli(*args, "--overwrite", env={"AUTOINTERP_TEST_KEY": SECRET})
        assert again.returncode == 0, again.stderr[-2000:]
        assert srv.count == sent
        assert _unit_files(out) == first
        assert json.loads((out / "usage.json").read_text())["requests"] == 0


def test_a_killed_run_resumes_unit_by_unit(planted_store, tmp_path):
    out, ref = tmp_path / "killed", tmp_path / "reference"
    extra = ["--level", "neuron", "--space", "ffn", "--layer", "1", "--units", "0-2", "4", "--scorers", "detection",
             "--llm.concurrency", "2", *SMALL]
    with ChatServer(latency=0.05) as srv:
        argv = [sys.executable, "-m", "moelens", *map(str, _llm_args(planted_store, out, srv, *extra)), "--quiet"]
        proc = subprocess.Popen(argv, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while time.time() < deadline and not list((out / "units").glob("*.json")) and proc.poll() is None:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kept = {p.name: p.stat().st_mtime_ns for p in (out / "units").glob("*.json")}
        assert 1 <= len(kept) < 4 and not (out / "DONE").exists()
        resumed = run_cli(*_llm_args(planted_store, out, srv, *extra))
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert {p.name: p.stat().st_mtime_ns for p in (out / "units").glob("*.json") if p.name in kept} == kept
        clean = run_cli(*_llm_args(planted_store, ref, srv, *extra))
        assert clean.returncode == 0, clean.stderr[-2000:]
    assert _unit_files(out) == _unit_files(ref) and len(_unit_files(ref)) == 4
    dead = json.loads((ref / "units" / "L1.ffn.N4.json").read_text())
    assert dead["status"] == "no activating examples" and dead["explanation"] is None
    assert "1 without enough activating windows" in resumed.stdout


def test_unreachable_endpoint_is_one_line_after_bounded_retries(planted_store, tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.time()
    proc = run_cli("interpret", "--store", planted_store, "--out", tmp_path / "x", "--explainer", "llm",
                   "--llm.model", "m", "--llm.base_url", f"http://127.0.0.1:{port}/v1", "--llm.max_retries", "2",
                   "--llm.backoff", "0.05", "--layer", "0", "--units", "0")
    assert_user_error(proc, "unreachable after 3 tries", "--llm.base_url")
    assert time.time() - t0 < 60


@pytest.mark.parametrize("args,needles", [
    (["--scorers", "detection", "vibes"], ["unknown scorer 'vibes'", "detection"]),
    (["--explainer", "llm", "--scorers", "rules"], ["rules"]),
    (["--level", "neuron", "--space", "shared"], ["shared", "capture"]),
])
def test_bad_input_is_one_line(planted_store, tmp_path, args, needles):
    proc = run_cli("interpret", "--store", planted_store, "--out", tmp_path / "x", "--llm.model", "m", *args)
    assert_user_error(proc, *needles)
    assert not (tmp_path / "x").exists()


def test_lens_bad_input_is_one_line(tmp_path):
    proc = run_cli("lens", "--model", tmp_path / "model", "--store", tmp_path / "no-store")
    assert_user_error(proc, "no activation store", "moelens capture")
    assert not (tmp_path / "no-store").exists()
