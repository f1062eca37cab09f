"""``moelens quickstart`` end to end at toy size (``--preset quickstart-tiny``), as a user runs it:
killed with SIGKILL in the middle of a training stage, rerun, it resumes that stage from its
checkpoint without redoing the finished ones; killed again in the auto-interpretation stage once
one model's experts are done, rerun, it keeps that model's results and does the other; then it
writes the summary and the report, which a real browser opens without errors. The three runs
together compute every stage once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from clitools import ROOT, assert_user_error, cli_env, run_cli

STAGES = ["data", "train-dense-gelu", "train-switch", "train-moex", "legal", "capture", "probe",
          "boardgame", "interpret", "specialize"]
"""The resumable stages; the report is rebuilt after them on every run."""
KILLED = "train-switch"
FIRST_LOG = 8  # quickstart-tiny: validation every 8 of 24 steps, a checkpoint every 3


def _command(out):
    return [sys.executable, "-m", "moelens", "quickstart", "--preset", "quickstart-tiny",
            "--out", str(out), "--games.workers", "1"]


def _kill_when(out, ready, what: str) -> None:
    """Start the quickstart and SIGKILL it (its whole process group) once ``ready()``."""
    proc = subprocess.Popen(_command(out), cwd=ROOT, env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not ready():
            assert proc.poll() is None, f"the quickstart ended before {what}"
            assert time.monotonic() < deadline, f"not {what} within 300 s"
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _kill_during_training(out) -> tuple[int, list[str]]:
    """Kill the quickstart once the stage to kill has checkpointed past its first logged step;
    returns the checkpoint's step and the metrics lines logged up to it."""
    run = out / KILLED / "switch"
    _kill_when(out, lambda: _checkpoint_step(run) >= FIRST_LOG + 1, "the stage to kill began")
    assert not (out / KILLED / "DONE").exists(), "the stage finished before the kill"
    step = _checkpoint_step(run)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return step, [l for l in lines if json.loads(l)["iter"] <= step]


def _done(out) -> dict[str, int]:
    return {s: (out / s / "DONE").stat().st_mtime_ns for s in STAGES
            if (out / s / "DONE").exists()}


def _checkpoint_step(run) -> int:
    try:
        return int(json.loads((run / "ckpt" / "latest.json").read_text())["step"])
    except (OSError, ValueError, KeyError):
        return -1


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart") / "run"
    step, before = _kill_during_training(out)
    marks = _done(out)
    # second attempt: killed inside the interpretation stage, one model's experts done
    first = out / "interpret" / "switch" / "DONE"
    _kill_when(out, first.exists, "the first model's experts were interpreted")
    assert not (out / "interpret" / "DONE").exists(), "the stage finished before the kill"
    marks2 = {**_done(out), "interpret/switch": first.stat().st_mtime_ns}
    proc = subprocess.run(_command(out), cwd=ROOT, env=cli_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc, (step, before), (marks, marks2)


def _stage_lines(proc) -> dict[str, str]:
    lines = proc.stdout.splitlines()
    return {stage: next(l for l in lines if l.startswith(f"[{i}/{len(STAGES)}]") and "..." in l
                        and ("skipped" in l or "done in" in l))
            for i, stage in enumerate(STAGES, 1)}


def test_the_rerun_resumes_the_killed_training_stage(quickstart):
    out, proc, before, (marks, _) = quickstart
    assert set(marks) == {"data", "train-dense-gelu"}
    for stage, mtime in marks.items():  # finished stages were not touched again
        assert (out / stage / "DONE").stat().st_mtime_ns == mtime
    # the killed run continued from its checkpoint: the lines it had logged up to it are kept
    # byte for byte (a fresh start would write them again with other throughput figures)
    step, kept = before
    assert any("tokens_per_s" in l for l in kept)
    after = (out / KILLED / "switch" / "metrics.jsonl").read_text().splitlines()
    assert after[:len(kept)] == kept
    iters = [json.loads(l)["iter"] for l in after]
    assert iters == sorted(set(iters)) and iters[-1] == 24


def test_the_rerun_resumes_the_killed_interpretation_stage(quickstart):
    out, proc, _, (_, marks2) = quickstart
    assert set(marks2) == set(STAGES[:STAGES.index("interpret")]) | {"interpret/switch"}
    lines = _stage_lines(proc)
    for stage in STAGES:
        assert ("skipped" in lines[stage]) == (stage in marks2), lines[stage]
    assert any(l.startswith("[report] write the HTML report ... done in")
               for l in proc.stdout.splitlines())
    for stage, mtime in marks2.items():  # the first model's experts were not redone
        assert (out / stage / "DONE").stat().st_mtime_ns == mtime
    assert (out / "interpret" / "moex" / "DONE").stat().st_mtime_ns > marks2["interpret/switch"]
    units = sorted(p.name for p in (out / "interpret" / "moex" / "units").iterdir())
    assert units == [f"L{l}.expert_out.E{e}.json" for l in range(2) for e in range(4)]


def test_summary_holds_stage_times_and_the_headline(quickstart):
    out, proc, _, _ = quickstart
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["stages"]) == STAGES + ["report"]
    assert all(s["wall_seconds"] > 0 for s in summary["stages"].values())
    rows = {r["model"]: r for r in summary["headline"]}
    assert set(rows) == {"dense-gelu", "switch", "moex"}
    for name, r in rows.items():
        assert 0 < r["val_loss"] < 4 and 0 <= r["probe_k1"] <= 1 and 0 <= r["probe_k1_paper"] <= 1
        assert 0 <= r["legal_move_rate"] <= 1
        assert 0 < r["chance_coverage"] < r["coverage"] < 1 and 0 <= r["reconstruction"] <= 1
        moe = name != "dense-gelu"
        assert (r["probe_routed_k1"] is not None) == moe
        assert (r["interp_score"] is not None) == moe  # the experts' labels, MoEs only
        assert "probe_k64" in r and "probe_k64_paper" in r  # tiny probes k <= 4: None
    interp = summary["stages"]["interpret"]["summary"]
    assert {rows[m]["interp_score"] for m in ("switch", "moex")} == {interp["switch"],
                                                                     interp["moex"]}
    assert {r["interp_metric"] for r in rows.values() if r["interp_score"] is not None} == {
        "detection balanced accuracy"}
    legal = summary["stages"]["legal"]["summary"]
    assert {m: rows[m]["legal_move_rate"] for m in rows} == legal
    assert rows["moex"]["paper_row"] == "MoE-X from scratch"
    assert rows["switch"]["paper_row"] == "Switch"
    assert summary["notes"] and summary["settings"]["games"] == 40
    table = [l for l in proc.stdout.splitlines() if l.startswith("quickstart: ")]
    assert any(l.split()[1] == "moex" for l in table)
    assert str(out / "report" / "report.html") in proc.stdout


def test_the_report_opens_in_a_browser(quickstart):
    from browsertools import PageLog, chromium, launch

    out, _, _, _ = quickstart
    path, why = chromium()
    if path is None:
        pytest.skip(why)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = launch(p, path)
        page = browser.new_page()
        log = PageLog(page)
        page.goto((out / "report" / "report.html").as_uri())
        page.wait_for_selector("body[data-tables-ready]", state="attached", timeout=15000)
        assert log.problems() == []
        assert page.locator("#comparison-table tbody tr").count() == 3
        assert page.locator(".expert-card").count() == 2 * 2 * 4  # Switch and MoE-X
        for section in ("probing", "legal", "boardgame", "autointerp", "specialization"):
            assert "not run" not in page.inner_text(f"#{section}"), section
        assert page.locator("#autointerp a[href^='#expert-']").count() == 2 * 2 * 4
        browser.close()


def test_bad_settings_are_one_line(tmp_path):
    assert_user_error(run_cli("quickstart", "--out", tmp_path / "q", "--model.models", "nope"),
                      "unknown model preset")
    assert_user_error(run_cli("quickstart", "--out", tmp_path / "q", "--model.top_k", "9"),
                      "top_k")
    assert not (tmp_path / "q").exists()


def test_the_readme_python_example_runs_on_the_quickstart(quickstart):
    import re

    out, _, _, _ = quickstart
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert blocks, "the README has a Python example"
    for code in blocks:
        proc = subprocess.run([sys.executable, "-c", code.replace("runs/quickstart", str(out))],
                              cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "tokens, expert 3 saw" in proc.stdout
