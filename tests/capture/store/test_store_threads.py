"""On the CPU stored values depend on torch's thread count, so a store never mixes two counts.

A 1-thread and a 2-thread capture of the same corpus can differ in the last bit of routing
weights and expert outputs (float reductions are split by thread); an unfinished store is
therefore resumed only with the count it was begun with.
"""

from __future__ import annotations

import json
import os

from clitools import SRC, assert_user_error, run_cli


def _run(args, threads_env, *extra):
    from store_helpers import HERE

    return run_cli("capture", *args, *extra, env={"OMP_NUM_THREADS": str(threads_env),
                                                   "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE)])})


def test_resume_on_another_thread_count_is_refused(tmp_path, capture_args):
    args = [*capture_args, "--tokens", "256", "--out", str(tmp_path / "s")]
    first = _run(args, 1, "--stop_after_shards", "2")
    assert first.returncode == 0, first.stderr[-2000:]
    capture = json.loads((tmp_path / "s" / "capture.json").read_text())
    assert capture["settings"]["cpu_threads"] == 1
    assert sorted(p.name for p in (tmp_path / "s" / "shards").iterdir()) == ["00000.json", "00001.json"]

    assert_user_error(_run(args, 2), "1 CPU threads", "this run has 2", "--threads 1",
                      "OMP_NUM_THREADS=1", "--overwrite")
    assert sorted(p.name for p in (tmp_path / "s" / "shards").iterdir()) == ["00000.json", "00001.json"]

    done = _run(args, 2, "--threads", "1")  # the same count as asked: resumes and finishes
    assert done.returncode == 0 and "wrote 256 tokens" in done.stdout, done.stderr[-2000:]
    again = _run(args, 2)  # complete: nothing to mix, whatever the thread count
    assert again.returncode == 0 and "already complete" in again.stdout, again.stderr[-2000:]

