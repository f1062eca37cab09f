"""The life of a store directory: claim it, find the shards still to do, write the manifest.

``capture.json`` (written first) holds a fingerprint of everything that decides the store's
content; a rerun with the same settings resumes, keeping every shard whose completion record and
file checksums are intact. ``manifest.json`` is written last, only once every shard is complete,
so a store without a manifest is never taken as complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from moelens import __version__
from moelens.capture.windows import ShardPlan
from moelens.errors import StoreError
from moelens.rundir import atomic_write_json, sha256_file
from moelens.store import format as fmt
from moelens.store.verification import verify
from moelens.store.writer import LayerPlan

#: the settings key of the CPU thread count (see :func:`prepare`)
THREADS = "cpu_threads"


def _check_complete(root: Path) -> None:
    """A finished store counts as complete only if every file still matches its manifest."""
    report = verify(root)
    if not report.ok:
        raise StoreError(f"{report.summary()}; rerun the capture with --overwrite to recapture it")


def fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _only_threads_differ(a: dict[str, Any], b: dict[str, Any]) -> bool:
    rest = lambda s: {k: v for k, v in s.items() if k != THREADS}  # noqa: E731
    return a.get(THREADS) != b.get(THREADS) and fingerprint(rest(a)) == fingerprint(rest(b))


def prepare(root: Path, settings: dict[str, Any], overwrite: bool) -> str:
    """Claim ``root`` for a capture with ``settings``: returns "done", "resume" or "fresh".

    On the CPU, float reductions (and so the stored values, to the last bit) depend on torch's
    thread count, which is therefore part of ``settings`` (key :data:`THREADS`): an unfinished
    capture is resumed only with the thread count it was begun with, so one store never mixes
    shards of two, while a complete store is complete whatever the thread count of a rerun.
    """
    fp = fingerprint(settings)
    if root.exists() and not root.is_dir():
        raise StoreError(f"--out {root} is a file; give a directory path")
    entries = sorted(p.name for p in root.iterdir()) if root.exists() else []
    if entries:
        ours = (root / "capture.json").exists() or (root / "manifest.json").exists()
        if not ours:
            raise StoreError(f"--out {root} already holds files that are not an activation store "
                             f"(e.g. {entries[0]}); choose an empty or new directory")
        if overwrite:
            shutil.rmtree(root)
        else:
            claim = _read_json(root / "manifest.json") or _read_json(root / "capture.json") or {}
            if claim.get("format_version") != fmt.FORMAT_VERSION:
                raise StoreError(f"--out {root} holds a store of format version "
                                 f"{claim.get('format_version')}, not {fmt.FORMAT_VERSION}; pass "
                                 "--overwrite to recapture it or choose another --out")
            manifest = _read_json(root / "manifest.json")
            if claim.get("fingerprint") != fp:
                theirs = claim.get("settings") or {}
                if not _only_threads_differ(theirs, settings):
                    raise StoreError(f"--out {root} holds a capture made with other settings; pass "
                                     "--overwrite to replace it or choose another --out")
                if manifest is None:
                    n = theirs.get(THREADS)
                    raise StoreError(f"--out {root} holds an unfinished capture made with {n} CPU "
                                     f"threads and this run has {settings.get(THREADS)} (stored values "
                                     f"depend on it); rerun with --threads {n} (or OMP_NUM_THREADS={n}) "
                                     "or pass --overwrite")
                _check_complete(root)
                return "done"  # complete: nothing would be mixed
            if manifest is not None and manifest.get("fingerprint") == fp:
                _check_complete(root)
                return "done"
            return "resume"  # no (readable) manifest: finish the shards, rewrite the manifest
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(root / "capture.json", {"format": fmt.FORMAT_NAME,
                                              "format_version": fmt.FORMAT_VERSION,
                                              "fingerprint": fp, "settings": settings})
    return "fresh"


def completed(root: Path, shard: ShardPlan | tuple[int, int, int], rehash: bool = True) -> dict[str, Any] | None:
    """The shard's completion record if the shard is complete and intact, else None.

    ``shard`` is a plan or its ``(index, start, stop)``. ``rehash`` checks every file's sha256
    (resume); without it only presence and size are checked (finalize, right after the shards
    were written and hashed).
    """
    index, start, stop = (shard.index, shard.start, shard.stop) if isinstance(shard, ShardPlan) else shard
    record = _read_json(fmt.shard_record_path(root, index))
    if not record or record.get("start") != start or record.get("stop") != stop:
        return None
    for rel, entry in record.get("files", {}).items():
        path = root / rel
        if not path.exists() or path.stat().st_size != entry.get("bytes"):
            return None
        if rehash and sha256_file(path) != entry["sha256"]:
            return None
    return record


def check_tokens(root: Path, shard: ShardPlan, table: np.ndarray) -> None:
    """Refuse to keep a complete shard whose tokens are not those the corpus gives now.

    The fingerprint holds the corpus files' sizes, not their contents (hashing them would read the
    whole corpus); a resumed capture re-tokenizes the corpus anyway, so each kept shard's token
    table is compared with the one on disk.
    """
    stored = np.load(root / fmt.tokens_rel(shard.index), allow_pickle=False)
    if not np.array_equal(stored, table):
        raise StoreError(f"shard {fmt.shard_name(shard.index)} of {root} holds other tokens than "
                         "the corpus gives now (the corpus or tokenizer changed); pass --overwrite "
                         "to recapture")


class DocumentLog:
    """``documents.json`` written as the documents stream by, with the hash of what it holds.

    The store keeps the texts of the documents up to the last one that gives a token (doc ids
    are positions, so documents without tokens in between are kept, trailing ones are not). The
    file is written under a temporary name (removed by :func:`finalize` of a later run if this one
    dies) and renamed by :func:`finalize`; its bytes are those of ``json.dumps(texts,
    ensure_ascii=False)``. Until :meth:`open` it holds the few documents read before the store
    directory is claimed.
    """

    def __init__(self) -> None:
        self.fh: Any = None
        self.path: Path | None = None
        self.held: list[str] = []  # documents waiting to be written
        self.pending: list[str] = []  # documents without tokens since the last used one
        self.count = 0
        self.written = 0
        self.hash = hashlib.sha256()

    def add(self, doc: int, text: str, used: bool) -> None:
        if not used:
            self.pending.append(text)
            return
        for t in [*self.pending, text]:
            data = t.encode("utf-8")
            self.hash.update(len(data).to_bytes(8, "little"))
            self.hash.update(data)
            self.held.append(t)
            self.count += 1
        self.pending = []
        if self.fh is not None:
            self._flush()

    def open(self, root: Path) -> None:
        self.path = root / ".documents.json.partial.tmp"
        self.fh = open(self.path, "w", encoding="utf-8")
        self.fh.write("[")
        self._flush()

    def _flush(self) -> None:
        for t in self.held:
            self.fh.write((", " if self.written else "") + json.dumps(t, ensure_ascii=False))
            self.written += 1
        self.held = []

    def close(self) -> Path:
        self.fh.write("]")
        self.fh.close()
        return self.path

    def describe(self) -> dict[str, Any]:
        """The manifest's account of the recorded documents: their count and hash."""
        return {"n_documents": self.count, "sha256": self.hash.hexdigest()}


def finalize(root: Path, spans: list[tuple[int, int, int]], documents: DocumentLog,
             plans: list[LayerPlan], settings: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """Check that every shard ``(index, start, stop)`` is complete, then move documents.json into
    place and write manifest.json (last)."""
    records = []
    for span in spans:
        record = completed(root, span, rehash=False)
        if record is None:
            raise StoreError(f"shard {fmt.shard_name(span[0])} of {root} is missing or corrupt; "
                             "rerun the same capture command to redo it")
        records.append(record)
    os.replace(documents.close(), root / "documents.json")
    docs_entry = {"file": "documents.json", "sha256": sha256_file(root / "documents.json"),
                  "rows": documents.count}
    manifest = {
        "format": fmt.FORMAT_NAME,
        "format_version": fmt.FORMAT_VERSION,
        "moelens_version": __version__,
        **meta,
        "dtype": settings["dtype"],
        "n_tokens": spans[-1][2] if spans else 0,
        "layers": [p.layer for p in plans],
        "spaces": {str(p.layer): p.spaces for p in plans},
        "layer_info": {str(p.layer): p.to_json() for p in plans},
        "token_columns": list(fmt.TOKEN_COLUMNS),
        "documents": docs_entry,
        "shards": records,
        "fingerprint": fingerprint(settings),
        "settings": settings,
    }
    for stray in root.rglob(".*.tmp"):  # temp files of a process killed mid-write
        stray.unlink(missing_ok=True)
    atomic_write_json(root / "manifest.json", manifest)
    return manifest
