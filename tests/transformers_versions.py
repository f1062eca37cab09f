"""The other transformers releases moelens supports, installed side by side for the version test.

``pyproject.toml`` accepts ``transformers>=5.23,<5.26``; the environment holds one of them. Each
other release (the newest patch of each minor version) is installed with ``pip install --target``
into ``.transformers-versions/<version>/`` of the checkout (ignored by git, kept between runs),
with ``--no-deps``: its dependencies come from the main environment, whose torch is never
touched; a requirement the main environment does not satisfy is added to the same target, also
without dependencies, unless it is an optional runtime helper moelens turns off (``kernels``:
moelens loads models with ``use_kernels=False``). The test then runs a subset of the suite in a
subprocess with that directory first on ``sys.path``.

Run as a script (``python tests/transformers_versions.py``, as ``make install`` does) to install
every missing version ahead of the tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".transformers-versions"

VERSIONS = ("5.23.0", "5.24.0", "5.25.0")
"""The newest patch of each minor release in pyproject's range."""

SKIPPED_REQUIREMENTS = {"kernels"}
"""Requirements of a release that moelens does not need (see the module docstring)."""

SUBSET = [
    "tests/capture/adapters/test_adapter_conformance.py",
    "tests/models/test_model.py::test_kv_cache_gives_the_same_logits_and_tokens",
    "tests/capture/store/test_store_placement.py::test_model_split_over_cpu_and_disk_captures_the_same_store",
]
"""Adapter conformance for every family, the key/value cache of moelens models (the field
renamed in 5.24) and a capture, plain and split over CPU and disk by accelerate."""

UNREACHABLE = ("NewConnectionError", "ConnectionError", "Max retries exceeded", "Temporary failure in name resolution",
               "Network is unreachable", "timed out", "Name or service not known", "(from versions: none)",
               "ProxyError", "SSLError")
"""pip messages that mean the package index could not be reached (not that the install is wrong)."""


class Unreachable(Exception):
    """The package index cannot be reached: the version test skips, naming this."""


def target(version: str) -> Path:
    return CACHE / version


def installed(version: str) -> bool:
    return (target(version) / ".complete").exists()


def _pip(args: list[str], timeout: float = 600) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "--no-compile", "--retries", "1", "--timeout", "20", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        text = proc.stderr + proc.stdout
        if any(n in text for n in UNREACHABLE):
            last = [l for l in text.splitlines() if l.strip()][-1:] or ["no output"]
            raise Unreachable(f"the package index is unreachable ({last[0].strip()[:200]})")
        raise RuntimeError(f"pip install {' '.join(args)} failed:\n{text[-3000:]}")


def _missing_requirements(where: Path, version: str) -> list[str]:
    """Requirements of the installed release that the main environment does not satisfy."""
    from importlib import metadata

    from packaging.requirements import Requirement

    dist = next(metadata.distributions(path=[str(where)], name="transformers"))
    missing = []
    for line in dist.requires or []:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        if req.name in SKIPPED_REQUIREMENTS:
            continue
        try:
            have = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            missing.append(str(req))
            continue
        if not req.specifier.contains(have, prereleases=True):
            missing.append(str(req))
    return missing


def install(version: str) -> Path:
    """``.transformers-versions/<version>`` with that release (installed now if missing)."""
    dest = target(version)
    if installed(version):
        return dest
    tmp = CACHE / f".{version}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _pip(["--no-deps", "--target", str(tmp), f"transformers=={version}"])
    extra = _missing_requirements(tmp, version)
    if extra:
        _pip(["--no-deps", "--target", str(tmp), *extra])
    (tmp / ".complete").write_text(f"transformers=={version} {' '.join(extra)}\n")
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


def others() -> list[str]:
    """The supported releases other than the one installed in this environment."""
    import transformers

    return [v for v in VERSIONS if v != transformers.__version__]


if __name__ == "__main__":
    for v in others():
        try:
            print(f"transformers {v}: {install(v)}")
        except Unreachable as exc:
            print(f"transformers {v}: not installed, {exc}")
