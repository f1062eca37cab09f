"""``moelens store verify`` and ``moelens.store.verify``: a good store passes, each kind of damage
is reported as one line naming the bad file, exit 2."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from clitools import assert_user_error, run_cli
from synthetic import N_TOKENS, build

from moelens.store import verify


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pristine") / "store"
    build(root)
    return root


@pytest.fixture
def store(pristine, tmp_path) -> Path:
    """A fresh copy of the good store for a test to damage."""
    return Path(shutil.copytree(pristine, tmp_path / "store"))


def _edit_manifest(root: Path, change: Callable[[dict], None]) -> None:
    manifest = json.loads((root / "manifest.json").read_text())
    change(manifest)
    (root / "manifest.json").write_text(json.dumps(manifest))


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_good_store_passes(pristine):
    proc = run_cli("store", "verify", pristine)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out = proc.stdout.strip()
    assert "intact" in out and "3 shard(s)" in out and f"{N_TOKENS} tokens" in out and "22 files" in out
    report = verify(pristine)
    assert report.ok and report.n_files == 22 and report.n_tokens == N_TOKENS


def test_a_good_coo_store_passes_and_a_bad_coo_file_is_named(tmp_path):
    root = tmp_path / "coo"
    build(root, coo=True)
    report = verify(root)
    assert report.ok, report.problems
    assert report.n_files == 28  # token, offsets and three coo arrays per shard
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["shards"][0]["expert_layout"] == {"0": "coo"}
    _flip(root / "L000/expert/00002.coo_value.npy")
    assert_user_error(run_cli("store", "verify", "--store", root), "L000/expert/00002.coo_value.npy", "corrupt")


def _bytes_flipped(root):
    _flip(root / "L000/expert/00001.values.npy")
    return "L000/expert/00001.values.npy", "corrupt"


def _truncated(root):
    path = root / "L000/resid/00002.npy"
    path.write_bytes(path.read_bytes()[:-12])
    return "L000/resid/00002.npy", "bytes"


def _deleted(root):
    (root / "L000/routing/00000.weights.npy").unlink()
    return "L000/routing/00000.weights.npy", "missing"


def _shard_record_deleted(root):
    (root / "shards/00001.json").unlink()
    return "shards/00001.json", "missing"


def _documents_flipped(root):
    text = (root / "documents.json").read_text()
    (root / "documents.json").write_text(text.replace("abc", "abd", 1))
    return "documents.json", "corrupt"


def _n_tokens_edited(root):
    _edit_manifest(root, lambda m: m.update(n_tokens=m["n_tokens"] + 16))
    return "manifest.json", f"n_tokens {N_TOKENS + 16}"


def _shard_range_edited(root):
    _edit_manifest(root, lambda m: m["shards"][1].update(stop=m["shards"][1]["stop"] - 1))
    return "manifest.json", "shard 00002 tokens 32..48, it should start at 31"


def _shard_range_edited_everywhere(root):
    def change(m):
        m["shards"][1]["stop"] -= 1
        (root / "shards/00001.json").write_text(json.dumps(m["shards"][1]))
    _edit_manifest(root, change)
    return "manifest.json", "shard 00002 tokens 32..48, it should start at 31"


def _file_rows_edited(root):
    def change(m):
        m["shards"][2]["files"]["tokens/00002.npy"]["rows"] = 99
    _edit_manifest(root, change)
    return "tokens/00002.npy", "99"


def _file_unlisted(root):
    _edit_manifest(root, lambda m: m["shards"][0]["files"].pop("L000/expert/00000.offsets.npy"))
    return "L000/expert/00000.offsets.npy", "not listed"


def _documents_count_edited(root):
    _edit_manifest(root, lambda m: m["documents"].update(rows=2))
    return "documents.json", "manifest says 2"


@pytest.mark.parametrize("damage", [_bytes_flipped, _truncated, _deleted, _shard_record_deleted,
                                    _documents_flipped, _n_tokens_edited, _shard_range_edited,
                                    _shard_range_edited_everywhere,
                                    _file_rows_edited, _file_unlisted, _documents_count_edited],
                         ids=lambda f: f.__name__.strip("_"))
def test_damage_is_one_line_naming_the_file(store, damage):
    bad_file, what = damage(store)
    proc = run_cli("store", "verify", "--store", store)
    assert_user_error(proc, bad_file, what, "recapture")
    assert proc.stdout == ""
    report = verify(store)
    assert not report.ok and report.problems[0].file == bad_file
    found = {(p.file, p.message) for p in report.problems}
    if damage is _shard_range_edited:  # the shard's own record still has the true range
        assert ("shards/00001.json", "differs from the manifest's record of the shard") in found
    if damage is _shard_range_edited_everywhere:  # the shard's arrays still have 16 rows
        assert ("tokens/00001.npy", "holds shape [16, 5], its shard needs [15, 5]") in found, found


def test_every_problem_is_in_the_report(store):
    _flip(store / "L000/expert/00000.token.npy")
    (store / "L000/resid/00001.npy").unlink()
    _edit_manifest(store, lambda m: m.update(n_tokens=1))
    report = verify(store)
    assert sorted(p.file for p in report.problems) == ["L000/expert/00000.token.npy", "L000/resid/00001.npy",
                                                       "manifest.json"]
    assert "(and 2 more problem(s))" in report.summary()


def test_no_store_is_a_user_error(tmp_path):
    assert_user_error(run_cli("store", "verify", "--store", tmp_path / "nothing"), "no activation store")
    assert_user_error(run_cli("store", "verify"), "moelens store verify STORE")
    assert_user_error(run_cli("store", "verify", tmp_path / "a", "--store", tmp_path / "b"),
                      "not both")
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / "manifest.json").write_text('{"format": "moel')
    assert_user_error(run_cli("store", "verify", "--store", tmp_path / "torn"), "manifest.json", "unreadable")


def test_a_malformed_manifest_is_named(store):
    _edit_manifest(store, lambda m: m["shards"].__setitem__(1, "oops"))
    assert_user_error(run_cli("store", "verify", "--store", store), "manifest.json", "malformed")
