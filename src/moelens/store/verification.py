"""Checking a complete store end to end: every file against the manifest, the manifest against itself.

Reading a store checks each file's sha256 lazily, the first time it is read, so a damaged shard
can sit unnoticed until an analysis reaches it. :func:`verify` reads everything once, up front:

- the manifest: shards numbered 0..S-1 covering [0, n_tokens) with no gap or overlap, the shard
  completion records on disk equal to the manifest's copies, and each shard listing exactly the
  files its layers and spaces call for;
- every file: present, of the recorded size and sha256, and an ``.npy`` array of the recorded
  shape and dtype;
- counts: per-token arrays hold one row per token of their shard, in the widths the manifest
  declares; expert row offsets run from 0 to the number of rows; ``documents.json`` holds the
  recorded number of documents and every token's document id is one of them;
- derived spaces (SAEs under ``derived/``): a usable descriptor, and every file it lists present
  with its recorded sha256.

``moelens store verify --store DIR`` runs it; capture runs it before calling a store complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from moelens.errors import ConfigError, StoreError
from moelens.rundir import sha256_file
from moelens.store import format as fmt
from moelens.store.reader import ActivationStore


@dataclass
class Problem:
    """One thing wrong with a store: the file it concerns (relative to the store) and what."""

    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file} {self.message}"


@dataclass
class VerifyReport:
    """What :func:`verify` checked and what it found wrong (nothing, if ``ok``)."""

    root: Path
    n_shards: int = 0
    n_tokens: int = 0
    n_files: int = 0
    n_bytes: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line: the counts checked, or the first problem (and how many more there are)."""
        if self.ok:
            return (f"{self.root} is intact: {self.n_shards} shard(s), {self.n_tokens} tokens, "
                    f"{self.n_files} files ({self.n_bytes / 2**20:.1f} MiB) match the manifest")
        more = len(self.problems) - 1
        return (f"store {self.root} is damaged: {self.problems[0]}"
                + (f" (and {more} more problem(s))" if more else ""))


def _expected_files(info: dict[str, Any], record: dict[str, Any]) -> dict[str, str]:
    """Relative path -> what it holds, for every file a shard of this layer must have."""
    i, layer, spaces = record["index"], int(info["layer"]), info["spaces"]
    want = {}
    if info.get("routing"):
        want[fmt.array_rel(layer, "routing", i, "ids")] = "routing ids"
        want[fmt.array_rel(layer, "routing", i, "weights")] = "routing weights"
        if "expert_out" in spaces:
            want[fmt.array_rel(layer, "routing", i, "out")] = "routing out"
    if "expert" in spaces:
        layout = record.get("expert_layout", {}).get(str(layer))
        parts = ["token", "offsets"] + (["values"] if layout == "rows" else ["coo_row", "coo_index", "coo_value"])
        for part in parts:
            want[fmt.array_rel(layer, "expert", i, part)] = f"expert {part}"
    for s in spaces:
        if s in fmt.DENSE_SPACES:
            want[fmt.array_rel(layer, s, i)] = s
    return want


def _check_file(root: Path, rel: str, entry: dict[str, Any], report: VerifyReport) -> np.ndarray | None:
    """Size, sha256 and ``.npy`` header of one file; the array (memory-mapped) when all agree."""
    path = root / rel
    if not path.is_file():
        report.problems.append(Problem(rel, "is missing"))
        return None
    size = path.stat().st_size
    report.n_files += 1
    report.n_bytes += size
    if entry.get("bytes") is not None and size != entry["bytes"]:
        report.problems.append(Problem(rel, f"is {size} bytes, the manifest says {entry['bytes']} "
                                            "(truncated or rewritten)"))
        return None
    if sha256_file(path) != entry.get("sha256"):
        report.problems.append(Problem(rel, "is corrupt (sha256 does not match the manifest)"))
        return None
    if not rel.endswith(".npy"):
        return None
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        report.problems.append(Problem(rel, f"is not a readable .npy array ({exc})"))
        return None
    if list(array.shape) != list(entry.get("shape", array.shape)) or str(array.dtype) != entry.get("dtype", str(array.dtype)):
        report.problems.append(Problem(rel, f"holds {array.dtype} {list(array.shape)}, the manifest says "
                                            f"{entry.get('dtype')} {entry.get('shape')}"))
        return None
    rows = int(array.shape[0]) if array.ndim else 1
    if entry.get("rows") != rows:
        report.problems.append(Problem(rel, f"holds {rows} rows, the manifest says {entry.get('rows')}"))
        return None
    return array


def _check_counts(rel: str, what: str, array: np.ndarray, n: int, info: dict[str, Any] | None,
                  record_files: dict[str, np.ndarray | None], report: VerifyReport) -> None:
    """The shape a file must have given its shard's token count ``n`` and its layer's widths."""
    bad = None
    if what == "tokens":
        if array.shape != (n, len(fmt.TOKEN_COLUMNS)):
            bad = f"[{n}, {len(fmt.TOKEN_COLUMNS)}]"
    elif what.startswith("routing"):
        if array.shape != (n, int(info["top_k"])):
            bad = f"[{n}, {info['top_k']}] (tokens x top-k)"
    elif what in fmt.DENSE_SPACES:
        width = int(info["widths"][what])
        if array.shape != (n, width):
            bad = f"[{n}, {width}] (tokens x width)"
    elif what == "expert offsets":
        e = int(info["num_experts"])
        tok = record_files.get(rel.replace(".offsets.npy", ".token.npy"))
        rows = None if tok is None else tok.shape[0]
        if array.shape != (e + 1,) or array[0] != 0 or (np.diff(array) < 0).any() or \
                (rows is not None and array[-1] != rows):
            bad = f"{e + 1} non-decreasing row offsets from 0 to the {rows} expert rows"
    elif what == "expert token":
        if array.ndim != 1 or array.shape[0] > n * int(info["top_k"]):
            bad = f"at most {n} x {info['top_k']} expert rows"
    elif what == "expert values":
        tok = record_files.get(rel.replace(".values.npy", ".token.npy"))
        width = int(info["widths"]["expert"])
        if array.ndim != 2 or array.shape[1] != width or (tok is not None and array.shape[0] != tok.shape[0]):
            bad = f"one row of width {width} per expert row"
    elif what in ("expert coo_index", "expert coo_value"):
        row = record_files.get(rel.rsplit(".", 2)[0] + ".coo_row.npy")
        if row is not None and array.shape != row.shape:
            bad = f"one entry per coo_row entry ({row.shape[0]})"
    if bad:
        report.problems.append(Problem(rel, f"holds shape {list(array.shape)}, its shard needs {bad}"))


def _shard_files(manifest: dict[str, Any], record: dict[str, Any]) -> dict[str, str]:
    """Every file one shard must have (relative path -> what it holds)."""
    want = {fmt.tokens_rel(record["index"]): "tokens"}
    for info in manifest["layer_info"].values():
        want.update(_expected_files(info, record))
    return want


def _check_manifest(root: Path, manifest: dict[str, Any], report: VerifyReport) -> list[dict[str, Any]]:
    """Shard ranges, shard records and file lists; returns the shards whose files can be checked."""
    shards = manifest["shards"]
    report.n_shards = len(shards)
    report.n_tokens = int(manifest["n_tokens"])
    expect_start, usable = 0, []
    for pos, record in enumerate(shards):
        name = fmt.shard_name(pos)
        if record.get("index") != pos:
            report.problems.append(Problem("manifest.json", f"numbers shard {pos} as {record.get('index')}"))
            continue
        start, stop = record.get("start"), record.get("stop")
        if start != expect_start or not isinstance(stop, int) or stop <= start:
            report.problems.append(Problem("manifest.json", f"gives shard {name} tokens {start}..{stop}, "
                                                            f"it should start at {expect_start}"))
            expect_start = stop if isinstance(stop, int) else expect_start
            continue
        expect_start = stop
        want = _shard_files(manifest, record)
        have = set(record.get("files", {}))
        for rel in sorted(set(want) - have):
            report.problems.append(Problem(rel, f"is not listed in the manifest for shard {name}"))
        for rel in sorted(have - set(want)):
            report.problems.append(Problem(rel, f"is listed for shard {name} but no captured space holds it"))
        usable.append(record)
    if expect_start != report.n_tokens:
        report.problems.append(Problem("manifest.json", f"says n_tokens {report.n_tokens} but its shards "
                                                        f"cover {expect_start} tokens"))
    return usable


def verify(path: str | Path) -> VerifyReport:
    """Check the complete store at ``path``; returns a report listing every problem found.

    Raises StoreError only when there is no store to check (no or unreadable manifest, another
    format); everything else wrong is a :class:`Problem` in the report.
    """
    store = ActivationStore.open(path, verify_reads=False)
    report = VerifyReport(store.root)
    try:
        _check_store(store.root, store.manifest, report)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        report.problems.append(Problem("manifest.json", f"is malformed ({type(exc).__name__}: {exc})"))
    problems, n_files, n_bytes = store._derived.check()  # derived spaces (SAEs): derived.py
    report.problems += [Problem(rel, message) for rel, message in problems]
    report.n_files, report.n_bytes = report.n_files + n_files, report.n_bytes + n_bytes
    return report


def _check_store(root: Path, manifest: dict[str, Any], report: VerifyReport) -> None:
    shards = _check_manifest(root, manifest, report)
    layer_of = {fmt.layer_dir(int(k)): v for k, v in manifest["layer_info"].items()}
    docs = manifest["documents"]
    max_doc = -1
    for record in shards:
        n = record["stop"] - record["start"]
        want = _shard_files(manifest, record)
        arrays: dict[str, np.ndarray | None] = {}
        for rel, entry in record.get("files", {}).items():
            arrays[rel] = _check_file(root, rel, entry, report)
        for rel, array in arrays.items():
            if array is None or rel not in want:
                continue
            info = layer_of.get(rel.split("/", 1)[0])
            _check_counts(rel, want[rel], array, n, info, arrays, report)
            if want[rel] == "tokens" and array.shape == (n, len(fmt.TOKEN_COLUMNS)) and n:
                max_doc = max(max_doc, int(np.asarray(array[:, 1]).max()))
    for record in shards:  # last: when they differ, the problems above say which side is wrong
        rec_rel = f"shards/{fmt.shard_name(record['index'])}.json"
        try:
            on_disk = json.loads((root / rec_rel).read_text())
        except (OSError, json.JSONDecodeError):
            report.problems.append(Problem(rec_rel, "is missing or unreadable"))
            continue
        if on_disk != record:
            report.problems.append(Problem(rec_rel, "differs from the manifest's record of the shard"))
    rel = docs.get("file", "documents.json")
    before = len(report.problems)
    _check_file(root, rel, docs, report)
    if len(report.problems) == before:
        try:
            n_docs = len(json.loads((root / rel).read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            report.problems.append(Problem(rel, f"is unreadable ({exc})"))
        else:
            if n_docs != docs.get("rows"):
                report.problems.append(Problem(rel, f"holds {n_docs} documents, the manifest says "
                                                    f"{docs.get('rows')}"))
            elif n_docs <= max_doc:
                report.problems.append(Problem(rel, f"holds {n_docs} documents but tokens come from "
                                                    f"document {max_doc}"))


@dataclass
class StoreVerifyConfig:
    POSITIONAL: ClassVar[str] = "store"

    store: Path | None = None
    """activation store directory to check (every file against the manifest's checksums and counts)"""

    def __post_init__(self):
        if self.store is None:
            raise ConfigError("give the store to check: moelens store verify STORE")


def run(cfg: StoreVerifyConfig) -> int:
    """``moelens store verify``: exit 0 with a summary, or a StoreError naming the first bad file."""
    report = verify(cfg.store)
    if not report.ok:
        raise StoreError(f"{report.summary()}; recapture the store (moelens capture ... --overwrite)")
    print(f"store verify: {report.summary()}")
    return 0
