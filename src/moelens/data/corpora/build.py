"""Building the corpora: collect every source, write one jsonl per kind, then the manifest.

The manifest is written last and doubles as the completion marker: a directory without one is
unfinished and is rebuilt; one whose manifest holds the same settings is left alone (no-op).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from moelens import __version__
from moelens.data.concepts import list_concepts
from moelens.data.concepts import pos as pos_concepts
from moelens.data.corpora.collect import Collected, collect, pos_documents
from moelens.data.corpora.config import CorporaConfig
from moelens.data.corpora.counts import KIND_GROUPS, count_positives
from moelens.data.corpora.sources import SOURCES, Source, find_files, missing_reason
from moelens.errors import ConfigError
from moelens.rundir import atomic_path, atomic_write_json, sha256_file

FORMAT = "moelens-corpora"
VERSION = 1
Log = Callable[[str], None]


def _selected(cfg: CorporaConfig) -> list[Source]:
    wanted = set(cfg.kinds) | ({"prose"} if "pos" in cfg.kinds else set())
    return [s for s in SOURCES if s.kind in wanted and (not cfg.sources or s.name in cfg.sources)]


def install_missing(sources: list[Source], cfg: CorporaConfig, log: Log) -> None:
    """``apt-get install -y`` the Debian packages of sources that are absent (asked for only)."""
    if cfg.system_root.resolve() != Path("/"):
        log(f"--install ignored: system_root is {cfg.system_root}, not /")
        return
    missing = sorted({p for s in sources if s.packages
                      and missing_reason(s, find_files(s, cfg.system_root, cfg.python_roots))
                      for p in s.packages})
    if not missing:
        return
    if shutil.which("apt-get") is None:
        log("--install: apt-get is not available on this machine; skipping installs")
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for package in missing:
        log(f"apt-get install -y {package}")
        proc = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", package],
                              capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
            log(f"could not install {package}: {tail}")


def _write_jsonl(path: Path, docs: list[dict]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            for doc in docs:
                fh.write(json.dumps(doc, ensure_ascii=False) + "\n")


def _tag(docs: list[dict], log: Log) -> dict:
    info = pos_concepts.tagger_info()
    if not info["available"]:
        log(f"POS tags not stored: {info['reason']}")
        return info
    for doc in docs:
        tokens, first = pos_concepts.tag(doc["text"])
        doc["pos_tags"] = [list(t) for t in tokens]
        doc["first_sentence"] = list(first)
    return info


def _up_to_date(cfg: CorporaConfig, manifest_path: Path) -> dict | None:
    if not manifest_path.exists():
        return None
    old = json.loads(manifest_path.read_text())
    same = old.get("config") == json.loads(json.dumps(cfg.identity()))
    files_ok = all((cfg.out / k["file"]).exists() and sha256_file(cfg.out / k["file"]) == k["sha256"]
                   for k in old.get("kinds", {}).values())
    if same and files_ok and not cfg.overwrite:
        return old
    if not cfg.overwrite:
        raise ConfigError(f"{cfg.out} already holds corpora built with other settings (or changed "
                          "files); pass --overwrite to rebuild or choose another --out")
    manifest_path.unlink()  # first, so a crash below never leaves a complete-looking corpus
    for name in [k["file"] for k in old.get("kinds", {}).values()] + ["concept_counts.json"]:
        (cfg.out / name).unlink(missing_ok=True)
    return None


def build_corpora(cfg: CorporaConfig, log: Log = print) -> dict:
    """Build (or find up to date) the corpora described by ``cfg``; returns the manifest."""
    manifest_path = cfg.out / "manifest.json"
    old = _up_to_date(cfg, manifest_path)
    if old is not None:
        log(f"corpora in {cfg.out} are up to date (pass --overwrite to rebuild)")
        return old
    sources = _selected(cfg)
    if cfg.install:
        install_missing(sources, cfg, log)
    collected: list[Collected] = []
    for source in sources:
        got = collect(source, cfg.system_root, cfg.python_roots, cfg.max_docs_per_source,
                      cfg.max_doc_chars, cfg.min_doc_chars, cfg.seed)
        log(f"{source.name}: skipped, {got.skipped}" if got.skipped else
            f"{source.name}: {len(got.docs)} documents from {got.files_read} of {got.n_files} files")
        collected.append(got)
    docs = {kind: [d for c in collected if c.source.kind == kind for d in c.docs]
            for kind in ("prose", "code", "latex")}
    tagger = None
    if "pos" in cfg.kinds:
        docs["pos"] = pos_documents(docs["prose"], cfg.pos_docs_per_source,
                                    min(cfg.max_doc_chars, 1500), cfg.seed)
        tagger = _tag(docs["pos"], log) if cfg.tag_pos else None
    cfg.out.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, dict] = {}
    unavailable: dict[str, str] = {}
    counts: dict[str, dict] = {}
    for kind in cfg.kinds:
        path = cfg.out / f"{kind}.jsonl"
        _write_jsonl(path, docs[kind])
        origin_kind = "prose" if kind == "pos" else kind
        per_source = {}
        for c in collected:
            if c.source.kind != origin_kind:
                continue
            mine = [d for d in docs[kind] if d["source"] == c.source.name]
            per_source[c.source.name] = {
                "packages": list(c.source.packages), "licence": c.source.licence,
                "files_found": c.n_files, "files_read": c.files_read, "n_docs": len(mine),
                "n_chars": sum(len(d["text"]) for d in mine), "skipped": c.skipped}
        kinds[kind] = {"file": path.name, "n_docs": len(docs[kind]),
                       "n_chars": sum(len(d["text"]) for d in docs[kind]),
                       "sha256": sha256_file(path), "sources": per_source}
        for group in KIND_GROUPS[kind]:
            for concept in list_concepts(group):
                reason = concept.unavailable_reason()
                if not docs[kind]:
                    reason = f"the {kind} corpus is empty (all its sources were skipped)"
                if reason:
                    unavailable[concept.qualified_name] = reason
        if cfg.count_concepts and docs[kind]:
            counts[kind] = count_positives(kind, docs[kind], cfg.min_positives)
            log(f"{kind}: scarce concepts (< {cfg.min_positives} positive tokens, fixed): "
                + (", ".join(counts[kind]["fixed"]["scarce"]) or "none"))
    if counts:
        atomic_write_json(cfg.out / "concept_counts.json", counts)
    corpus_hash = hashlib.sha256("".join(kinds[k]["sha256"] for k in cfg.kinds).encode()).hexdigest()
    manifest = {"format": FORMAT, "version": VERSION, "moelens_version": __version__,
                "config": cfg.identity(), "hash": corpus_hash, "kinds": kinds,
                "unavailable_concepts": unavailable, "pos_tagger": tagger,
                "concept_counts": "concept_counts.json" if counts else None}
    atomic_write_json(manifest_path, manifest)
    return manifest


def read_corpus(directory: str | os.PathLike, kind: str) -> list[dict]:
    """The documents of one kind from a built corpus directory."""
    from moelens.errors import DataError

    directory = Path(directory)
    manifest_path = directory / "manifest.json"
    if not manifest_path.exists():
        raise DataError(f"{directory} holds no finished corpora (no manifest.json); run "
                        "'moelens data corpora --out DIR' first")
    manifest = json.loads(manifest_path.read_text())
    if kind not in manifest.get("kinds", {}):
        raise DataError(f"{directory} has no {kind} corpus; it has "
                        f"{', '.join(manifest.get('kinds', {})) or 'none'}")
    path = directory / manifest["kinds"][kind]["file"]
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
