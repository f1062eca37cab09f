"""Atomic files and run-directory stages."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from moelens import rundir


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with rundir.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_atomic_files_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        rundir.atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


@dataclass
class Cfg:
    seed: int = 3
    """seed"""


def test_stage_skips_done_and_overwrite_restarts(tmp_path):
    stage = rundir.Stage(tmp_path / "run" / "probe")
    assert stage.begin(Cfg()) is True
    prov = (stage.path / "config.json").read_text()
    assert '"seed": 3' in prov and "moelens_version" in prov
    (stage.path / "part.txt").write_text("partial")
    assert stage.begin(Cfg()) is True and (stage.path / "part.txt").exists()  # resumable
    stage.finish({"n": 1})
    assert stage.done and stage.begin(Cfg()) is False
    assert stage.begin(Cfg(), overwrite=True) is True and not (stage.path / "part.txt").exists()


def test_atomic_dir_replaces_only_on_success(tmp_path):
    from moelens.rundir import atomic_dir

    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "new.txt").write_text("new")
            raise RuntimeError("killed mid-write")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temp directory left behind
    assert (target / "old.txt").read_text() == "old"
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    single = tmp_path / "was_a_file"
    single.write_text("x")
    with atomic_dir(single) as tmp:
        (tmp / "a").write_text("a")
    assert single.is_dir() and (single / "a").read_text() == "a"
