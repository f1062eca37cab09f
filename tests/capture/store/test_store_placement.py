"""Big-model placement and size planning: a model split over CPU and disk by accelerate captures
the same store as a plain load; ``--dry_run`` predicts the store's size; placement mistakes are
one-line errors."""

from __future__ import annotations

import json
import os
import re

from clitools import assert_user_error, run_cli

from moelens import cli


def _checksums(root):
    manifest = json.loads((root / "manifest.json").read_text())
    return {rel: e["sha256"] for r in manifest["shards"] for rel, e in r["files"].items()}


def _bytes_on_disk(root) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)


def test_model_split_over_cpu_and_disk_captures_the_same_store(tmp_path, capture_args, capsys):
    args = [a for a in capture_args if a != "--quiet"] + ["--tokens", "200"]
    assert cli.main(["capture", *args, "--out", str(tmp_path / "plain")]) == 0
    # 100 KB holds the embedding and room for one 67 KB decoder layer: the layers go to disk
    offload = tmp_path / "offload"
    assert cli.main(["capture", *args, "--out", str(tmp_path / "split"), "--device_map", "auto",
                     "--max_memory", "cpu=100KB", "--offload_folder", str(offload)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"placed by --device_map: .*\d+ on disk", out), out
    assert any(p.suffix == ".safetensors" for p in offload.iterdir())  # weights really on disk
    plain, split = _checksums(tmp_path / "plain"), _checksums(tmp_path / "split")
    assert len(plain) > 20 and split == plain


def test_dry_run_predicts_the_store_size_and_writes_nothing(tmp_path, capture_args, capsys):
    args = [*capture_args, "--tokens", "300"]
    out = tmp_path / "s"
    assert cli.main(["capture", *args, "--out", str(out), "--dry_run"]) == 0
    text = capsys.readouterr().out
    assert not out.exists()
    planned = int(re.search(r"store_bytes: (\d+)", text).group(1))
    for needle in ("expert", "resid", "routing", "GFLOP per token", "tokens/s", "nothing was written"):
        assert needle in text, text
    assert cli.main(["capture", *args, "--out", str(out)]) == 0
    actual = _bytes_on_disk(out)
    assert abs(planned - actual) <= 0.10 * actual, (planned, actual)


def test_placement_mistakes_are_one_line_errors(tmp_path, model_dir, corpus_files):
    base = ["capture", "--model", model_dir, "--corpus", *corpus_files, "--out", tmp_path / "s", "--quiet"]
    assert_user_error(run_cli(*base, "--device", "cuda"), "--device cuda", "no cuda gpu")
    assert_user_error(run_cli(*base, "--max_memory", "cpu=20KB"), "too small", "decoder layer")
    assert_user_error(run_cli(*base, "--device_map", '{"model.layers.0": 3, "lm_head": "cpu"}'),
                      "gpu 3", "no cuda gpu is visible")
    assert not (tmp_path / "s").exists()
