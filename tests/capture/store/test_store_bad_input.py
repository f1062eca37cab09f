"""Bad capture input: one line on stderr, exit 2, and no store left behind that looks complete."""

from __future__ import annotations

import subprocess
import sys

import pytest

from moelens import cli


def _one_line_error(capsys, args, *needles):
    assert cli.main(["capture", *args]) == 2
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(err) == 1, err
    for n in needles:
        assert n.lower() in err[0].lower(), err[0]


@pytest.mark.parametrize("extra, needles", [
    (["--layers", "7"], ["layer 7 is out of range", "0..2"]),
    (["--spaces", "expert", "neurons"], ["unknown space 'neurons'"]),
    (["--spaces", "ffn"], ["space 'ffn' does not exist"]),
    (["--ctx", "0"], ["--ctx must be at least 1"]),
])
def test_bad_settings(capsys, tmp_path, capture_args, extra, needles):
    out = tmp_path / "out"
    _one_line_error(capsys, [*capture_args, *extra, "--out", str(out)], *needles)
    assert not out.exists()


def test_bad_corpus(capsys, tmp_path, capture_args):
    i = capture_args.index("--corpus")
    rest = capture_args[:i] + capture_args[i + 3:]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    _one_line_error(capsys, [*rest, "--corpus", str(empty), "--out", str(tmp_path / "o")], "holds no text")
    _one_line_error(capsys, [*rest, "--corpus", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "o")],
                    "nope.txt does not exist")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"body": "x"}\n')
    _one_line_error(capsys, [*rest, "--corpus", str(bad), "--out", str(tmp_path / "o")], "no field 'text'")
    assert not (tmp_path / "o").exists()


def test_output_dir_holding_something_else(capsys, tmp_path, capture_args):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    for extra in ([], ["--overwrite"]):
        _one_line_error(capsys, [*capture_args, *extra, "--out", str(out)], "not an activation store")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_cli_subprocess_exit_2(tmp_path, capture_args):
    from store_helpers import subprocess_env

    proc = subprocess.run([sys.executable, "-m", "moelens", "capture", *capture_args, "--spaces", "bogus",
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, check=False,
                          env=subprocess_env(), timeout=120)
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "unknown space 'bogus'" in lines[0], proc.stderr
