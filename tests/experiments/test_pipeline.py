"""The stage runner behind quickstart and the experiments: skip, resume, refuse, time."""

from __future__ import annotations

import json

import pytest

from moelens.errors import ConfigError
from moelens.experiments import Step, run_pipeline


def _steps(calls: list[str], settings: dict | None = None, fail_at: str | None = None):
    def make(name):
        def run(path):
            calls.append(name)
            (path / "out.txt").write_text(name)
            if name == fail_at:
                raise RuntimeError("boom")
            return {"value": len(name)}
        return run
    settings = settings or {"n": 1}
    return [Step(n, f"stage {n}", make(n), settings) for n in ("a", "bb", "ccc")]


def test_runs_every_stage_then_skips_them(tmp_path):
    calls: list[str] = []
    lines: list[str] = []
    out = run_pipeline(tmp_path, _steps(calls), echo=lines.append)
    assert calls == ["a", "bb", "ccc"]
    assert out["stages"]["bb"]["summary"] == {"value": 2}
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved == out
    assert saved["total_wall_seconds"] == pytest.approx(
        sum(s["wall_seconds"] for s in saved["stages"].values()))
    assert lines[0].startswith("[1/3] stage a")
    calls.clear()
    lines.clear()
    again = run_pipeline(tmp_path, _steps(calls), echo=lines.append)
    assert calls == []
    assert all("skipped" in line for line in lines)
    # a skipped stage reports the time it took when it ran, not the time of the skip
    assert again["stages"] == out["stages"]


def test_a_failed_stage_is_not_done_and_the_rerun_starts_there(tmp_path):
    calls: list[str] = []
    with pytest.raises(RuntimeError):
        run_pipeline(tmp_path, _steps(calls, fail_at="bb"), quiet=True)
    assert calls == ["a", "bb"]
    assert not (tmp_path / "bb" / "DONE").exists()
    assert json.loads((tmp_path / "summary.json").read_text())["stages"].keys() == {"a"}
    calls.clear()
    run_pipeline(tmp_path, _steps(calls), quiet=True)
    assert calls == ["bb", "ccc"]


def test_a_done_stage_made_with_other_settings_is_refused(tmp_path):
    run_pipeline(tmp_path, _steps([]), quiet=True)
    calls: list[str] = []
    with pytest.raises(ConfigError, match="other settings.*--overwrite"):
        run_pipeline(tmp_path, _steps(calls, settings={"n": 2}), quiet=True)
    assert calls == []
    run_pipeline(tmp_path, _steps(calls, settings={"n": 2}), overwrite=True, quiet=True)
    assert calls == ["a", "bb", "ccc"]


def test_an_unfinished_stage_with_other_settings_starts_afresh(tmp_path):
    calls: list[str] = []
    with pytest.raises(RuntimeError):
        run_pipeline(tmp_path, _steps(calls, fail_at="a"), quiet=True)
    (tmp_path / "a" / "partial.bin").write_text("left by the other settings")
    run_pipeline(tmp_path, _steps(calls, settings={"n": 2}), quiet=True)
    assert not (tmp_path / "a" / "partial.bin").exists()
    assert (tmp_path / "a" / "DONE").exists()


def test_extra_fields_are_written_beside_the_stages(tmp_path):
    seen = []

    def reader(path):
        seen.append(json.loads((tmp_path / "summary.json").read_text()).get("notes"))
        return None

    steps = _steps([]) + [Step("read", "reads the summary", reader, {"n": 1})]
    out = run_pipeline(tmp_path, steps, quiet=True, extra={"notes": ["a note"]})
    assert out["notes"] == ["a note"] and seen == [["a note"]]  # there for later stages
    assert json.loads((tmp_path / "summary.json").read_text())["notes"] == ["a note"]
