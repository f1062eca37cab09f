"""Bad capture input: one line on stderr, exit 2, and no store left behind that looks complete;
a complete store that was damaged since is reported, never taken as complete."""

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


@pytest.fixture(scope="module")
def complete_store(tmp_path_factory, model_dir, corpus_files):
    """A complete capture, made once; each test damages a copy of it."""
    out = tmp_path_factory.mktemp("complete") / "store"
    args = ["capture", "--model", str(model_dir), "--corpus", *map(str, corpus_files), "--ctx", "40",
            "--batch_size", "3", "--shard_tokens", "64", "--quiet", "--layers", "0", "1",
            "--spaces", "expert", "resid", "--out", str(out)]
    assert cli.main(args) == 0
    return out, args[1:-2]


def _flip_bytes(root):
    path = root / "L001" / "expert" / "00002.values.npy"
    data = bytearray(path.read_bytes())
    data[-9] ^= 0x5A
    path.write_bytes(bytes(data))
    return "L001/expert/00002.values.npy", "corrupt"


def _truncate(root):
    path = root / "L000" / "resid" / "00001.npy"
    path.write_bytes(path.read_bytes()[:-20])
    return "L000/resid/00001.npy", "bytes"


def _delete(root):
    (root / "tokens" / "00003.npy").unlink()
    return "tokens/00003.npy", "missing"


def _edit_counts(root):
    import json

    manifest = json.loads((root / "manifest.json").read_text())
    manifest["shards"][1]["files"]["L000/resid/00001.npy"]["rows"] += 5
    (root / "manifest.json").write_text(json.dumps(manifest))
    return "L000/resid/00001.npy", "rows"


@pytest.mark.parametrize("damage", [_flip_bytes, _truncate, _delete, _edit_counts], ids=lambda f: f.__name__[1:])
def test_rerun_on_a_damaged_complete_store_names_the_bad_shard(tmp_path, complete_store, damage):
    import shutil

    from clitools import assert_user_error, run_cli

    good, args = complete_store
    out = shutil.copytree(good, tmp_path / "store")
    bad_file, what = damage(out)
    found = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    proc = run_cli("capture", *args, "--out", out)
    assert_user_error(proc, bad_file, what, "--overwrite")
    assert "already complete" not in proc.stdout + proc.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == found  # left as it was found
    proc = run_cli("capture", *args, "--out", out, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert (out / bad_file).read_bytes() == (good / bad_file).read_bytes()
    proc = run_cli("store", "verify", "--store", out)
    assert proc.returncode == 0 and "intact" in proc.stdout, proc.stderr
