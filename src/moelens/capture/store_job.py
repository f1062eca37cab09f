"""The life of a store directory: claim it, find the shards still to do, write the manifest.

``capture.json`` (written first) holds a fingerprint of everything that decides the store's
content; a rerun with the same settings resumes, keeping every shard whose completion record and
file checksums are intact. ``manifest.json`` is written last, only once every shard is complete,
so a store without a manifest is never taken as complete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from moelens import __version__
from moelens.store import format as fmt
from moelens.capture.corpus import ShardPlan
from moelens.store.verification import verify
from moelens.store.writer import LayerPlan
from moelens.errors import StoreError
from moelens.rundir import atomic_write_json, atomic_write_text, sha256_file


def fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def prepare(root: Path, settings: dict[str, Any], overwrite: bool) -> str:
    """Claim ``root`` for a capture with ``settings``: returns "done", "resume" or "fresh"."""
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
            if claim.get("fingerprint") != fp:
                raise StoreError(f"--out {root} holds a capture made with other settings; pass "
                                 "--overwrite to replace it or choose another --out")
            manifest = _read_json(root / "manifest.json")
            if manifest is not None and manifest.get("fingerprint") == fp:
                report = verify(root)  # complete only if every file still matches the manifest
                if not report.ok:
                    raise StoreError(f"{report.summary()}; rerun the capture with --overwrite to recapture it")
                return "done"
            return "resume"  # no (readable) manifest: finish the shards, rewrite the manifest
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(root / "capture.json", {"format": fmt.FORMAT_NAME,
                                              "format_version": fmt.FORMAT_VERSION,
                                              "fingerprint": fp, "settings": settings})
    return "fresh"


def completed(root: Path, shard: ShardPlan, rehash: bool = True) -> dict[str, Any] | None:
    """The shard's completion record if the shard is complete and intact, else None.

    ``rehash`` checks every file's sha256 (resume); without it only presence and size are
    checked (finalize, right after the shards were written and hashed).
    """
    record = _read_json(fmt.shard_record_path(root, shard.index))
    if not record or record.get("start") != shard.start or record.get("stop") != shard.stop:
        return None
    for rel, entry in record.get("files", {}).items():
        path = root / rel
        if not path.exists() or path.stat().st_size != entry.get("bytes"):
            return None
        if rehash and sha256_file(path) != entry["sha256"]:
            return None
    return record


def finalize(root: Path, shards: list[ShardPlan], documents: list[str], plans: list[LayerPlan],
             settings: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """Check that every shard is complete, then write documents.json and manifest.json (last)."""
    records = []
    for shard in shards:
        record = completed(root, shard, rehash=False)
        if record is None:
            raise StoreError(f"shard {fmt.shard_name(shard.index)} of {root} is missing or corrupt; "
                             "rerun the same capture command to redo it")
        records.append(record)
    n_docs = max((w.doc for s in shards for w in s.windows), default=-1) + 1
    atomic_write_text(root / "documents.json", json.dumps(documents[:n_docs], ensure_ascii=False))
    docs_entry = {"file": "documents.json", "sha256": sha256_file(root / "documents.json"),
                  "rows": n_docs}
    manifest = {
        "format": fmt.FORMAT_NAME,
        "format_version": fmt.FORMAT_VERSION,
        "moelens_version": __version__,
        **meta,
        "dtype": settings["dtype"],
        "n_tokens": shards[-1].stop if shards else 0,
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
