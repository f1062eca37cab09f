"""moelens on every supported transformers release, not only the installed one.

For each other release in pyproject's range, a subset of the suite (adapter conformance of every
family, the moelens model's key/value cache, a capture plain and split over CPU and disk) runs in
a subprocess that imports that release first; the subprocesses run side by side. The releases are
installed on first use (see ``transformers_versions``); the test skips only when the package index
cannot be reached to install one.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from clitools import SRC, cli_env
from transformers_versions import ROOT, SUBSET, Unreachable, install, others

_CHECK = ("import sys, pytest, transformers as t; "
          "assert t.__version__ == sys.argv[1], ('imported', t.__version__, t.__file__); "
          "sys.exit(pytest.main(sys.argv[2:]))")


def test_the_subset_passes_on_every_other_supported_release():
    versions = others()
    try:
        targets = {v: install(v) for v in versions}
    except Unreachable as exc:
        pytest.skip(f"cannot install the other transformers releases: {exc}")
    procs = {}
    for v, where in targets.items():
        env = cli_env({"PYTHONPATH": os.pathsep.join([str(where), str(SRC)])})
        procs[v] = subprocess.Popen([sys.executable, "-c", _CHECK, v, "-q", "-p", "no:cacheprovider", "-x", *SUBSET],
                                    cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    failed = {}
    for v, proc in procs.items():
        out, _ = proc.communicate(timeout=900)
        if proc.returncode != 0:
            failed[v] = out[-3000:]
        else:
            assert " passed" in out and "skipped" not in out.splitlines()[-1], out[-1000:]
    assert not failed, "\n\n".join(f"transformers {v}:\n{out}" for v, out in failed.items())
    assert len(versions) >= 1
