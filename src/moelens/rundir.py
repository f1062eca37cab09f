"""Run directories and atomic files.

A stage of work lives in ``runs/<name>/<stage>/`` with a ``config.json`` holding the fully
resolved config, the moelens version, the git hash and the seed. A stage that finished writes a
``DONE`` marker last; a rerun skips a done stage unless ``overwrite`` is set, and an unfinished
one is resumed by the code that owns it.

Every file a stage produces is written to a temporary name in the same directory and renamed
into place, so a crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from moelens import __version__
from moelens.config import to_dict

DONE_MARKER = "DONE"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates the file owner-only; results are ordinary files, so honour the umask.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; it replaces ``path`` (a directory or file
    that may exist) only if the block succeeds, and is removed otherwise.

    A crash leaves at worst a hidden ``.<name>.*.tmp`` directory, never a half-written ``path``.
    The old ``path`` is removed just before the rename, so there is a moment without either.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary directory
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def git_hash() -> str | None:
    """The commit of the moelens checkout in use, or None when installed from a wheel."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance(cfg: Any, seed: int | None = None) -> dict[str, Any]:
    """What is saved beside every result: the resolved config and where it came from."""
    return {
        "config": to_dict(cfg),
        "moelens_version": __version__,
        "git_hash": git_hash(),
        "seed": seed if seed is not None else getattr(cfg, "seed", None),
    }


@dataclass
class Stage:
    """One stage directory of a run (``runs/<name>/<stage>/``)."""

    path: Path

    @property
    def done(self) -> bool:
        return (self.path / DONE_MARKER).exists()

    def begin(self, cfg: Any, overwrite: bool = False, seed: int | None = None) -> bool:
        """Prepare the directory; returns False when the stage is already done (skip it).

        With ``overwrite`` the old directory is removed first. Otherwise an unfinished stage
        keeps its files, so the code that owns it can resume.
        """
        if overwrite and self.path.exists():
            shutil.rmtree(self.path)
        if self.done:
            return False
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path / "config.json", provenance(cfg, seed))
        return True

    def finish(self, summary: dict[str, Any] | None = None) -> None:
        """Mark the stage complete; ``summary`` is stored in the marker for quick inspection."""
        atomic_write_json(self.path / DONE_MARKER, summary or {})
