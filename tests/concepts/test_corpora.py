"""The corpora builder on a fake system tree: documents, licences, manifest, caching, CLI."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pytest

from moelens.data.corpora import CorporaConfig, build_corpora, read_corpus
from moelens.errors import ConfigError, DataError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from clitools import assert_user_error, run_cli

PROSE = ("The quick brown fox jumps over the lazy dog.\nIt was not amused by this at all, and it\n"
         "said so to everyone who would listen.\n\n"
         ".. note:: a directive line is not prose\n\n"
         "Python is a language. It has many words and 42 numbers in it, for sure, and\n"
         "more sentences that go on.\n\n")
TEX = r"""\documentclass{article}
\title{A Small Note}
\author{Ada Lovelace}
\begin{document}
\begin{abstract}
We compute $x^2$ and $\frac{a+b}{c}$ here, following \cite{knuth}.
\end{abstract}
Display: \[ y_{i} = \frac{1}{2} \]
\end{document}
"""
CODE = "import os\n\n\ndef f(x):\n    # add one\n    return x + 1  # done\n\n\nclass A:\n    pass\n"


@pytest.fixture()
def fake_tree(tmp_path):
    root = tmp_path / "root"
    docs = root / "usr/share/doc/python3.11/html/_sources/library"
    docs.mkdir(parents=True)
    (docs / "os.rst.txt").write_text(PROSE * 3)
    jargon = root / "usr/share/doc/jargon-text"
    jargon.mkdir(parents=True)
    (jargon / "jargon.txt.gz").write_bytes(gzip.compress((PROSE * 2).encode()))
    tex = root / "usr/share/doc/texlive-doc/latex/note"
    tex.mkdir(parents=True)
    (tex / "note.tex.gz").write_bytes(gzip.compress(TEX.encode()))
    (tex / "style.sty").write_bytes("% a style by Ren\xe9\n\\def\\x{1}\n".encode("latin-1") * 20)
    inc = root / "usr/include"
    inc.mkdir(parents=True)
    (inc / "add.h").write_text("#include <stdio.h>\n/* adds */\nint add(int a, int b)\n{\n"
                               "    return a + b; // sum\n}\n" * 3)
    info = root / "var/lib/dpkg/info"
    info.mkdir(parents=True)
    (info / "libadd-dev:amd64.list").write_text("/usr/include\n/usr/include/add.h\n")
    py = tmp_path / "pyroot"
    (py / "pkg").mkdir(parents=True)
    (py / "pkg/mod.py").write_text(CODE * 3)
    (py / "site-packages/other").mkdir(parents=True)
    (py / "site-packages/other/x.py").write_text(CODE * 3)
    return root, py


def config(tmp_path, fake_tree, **kw):
    root, py = fake_tree
    base = dict(out=tmp_path / "out", system_root=root, python_roots=[py], min_doc_chars=20,
                max_doc_chars=400, tag_pos=False, min_positives=3,
                sources=["python_docs", "jargon_file", "kjv_bible", "python_stdlib", "c_headers",
                         "texlive_doc"])
    base.update(kw)
    return CorporaConfig(**base)


def test_build_writes_documents_licences_manifest(tmp_path, fake_tree):
    logs = []
    cfg = config(tmp_path, fake_tree)
    manifest = build_corpora(cfg, logs.append)
    assert set(manifest["kinds"]) == {"prose", "code", "latex", "pos"}
    prose = read_corpus(cfg.out, "prose")
    assert {d["source"] for d in prose} == {"python_docs", "jargon_file"}
    assert all(set(d) >= {"text", "source", "licence"} for d in prose)
    assert any("public domain" in d["licence"] for d in prose if d["source"] == "jargon_file")
    code = read_corpus(cfg.out, "code")
    stdlib = [d for d in code if d["source"] == "python_stdlib"]
    assert stdlib and all("site-packages" not in d["origin"] for d in stdlib)
    headers = [d for d in code if d["source"] == "c_headers"]
    assert headers[0]["licence"] == "Debian package libadd-dev: see /usr/share/doc/libadd-dev/copyright"
    latex = read_corpus(cfg.out, "latex")
    assert any("\\frac{a+b}{c}" in d["text"] for d in latex)
    assert any("by René" in d["text"] for d in latex)  # Latin-1 file decoded as such
    pos_docs = read_corpus(cfg.out, "pos")
    assert pos_docs and all("\n" not in p for d in pos_docs for p in d["text"].split("\n\n"))
    assert not any("directive" in d["text"] for d in pos_docs)
    kjv = manifest["kinds"]["prose"]["sources"]["kjv_bible"]
    assert kjv["n_docs"] == 0 and "bible-kjv-text" in kjv["skipped"]
    assert any(l.startswith("kjv_bible: skipped") for l in logs)
    assert len(manifest["hash"]) == 64
    counts = json.loads((cfg.out / "concept_counts.json").read_text())
    fixed = counts["latex"]["fixed"]["concepts"]
    assert fixed["numerator"]["positive_tokens"] >= 2 and fixed["title"]["positive_tokens"] >= 3
    assert "citation" in counts["latex"]["paper"]["scarce"]  # the paper's [@..] form only
    assert counts["code"]["fixed"]["concepts"]["function_def"]["positive_tokens"] > 0


def test_rerun_is_a_noop_changed_config_needs_overwrite(tmp_path, fake_tree):
    cfg = config(tmp_path, fake_tree)
    build_corpora(cfg, lambda m: None)
    stamp = (cfg.out / "manifest.json").stat().st_mtime_ns
    logs = []
    build_corpora(config(tmp_path, fake_tree), logs.append)
    assert (cfg.out / "manifest.json").stat().st_mtime_ns == stamp
    assert "up to date" in logs[0]
    with pytest.raises(ConfigError, match="--overwrite"):
        build_corpora(config(tmp_path, fake_tree, seed=1), lambda m: None)
    manifest = build_corpora(config(tmp_path, fake_tree, seed=1, overwrite=True), lambda m: None)
    assert manifest["config"]["seed"] == 1


def test_empty_kind_marks_its_concepts_unavailable(tmp_path, fake_tree):
    cfg = config(tmp_path, fake_tree, kinds=["latex"], sources=["kjv_bible"])
    manifest = build_corpora(cfg, lambda m: None)
    assert manifest["kinds"]["latex"]["n_docs"] == 0
    assert "latex corpus is empty" in manifest["unavailable_concepts"]["latex.numerator"]
    with pytest.raises(DataError):
        read_corpus(cfg.out, "code")


def test_bad_config_values():
    with pytest.raises(ConfigError, match="kind"):
        CorporaConfig(kinds=["poetry"])
    with pytest.raises(ConfigError, match="source"):
        CorporaConfig(sources=["wikipedia"])


def test_cli_builds_and_rejects_bad_kind(tmp_path, fake_tree):
    root, py = fake_tree
    proc = run_cli("data", "corpora", "--out", tmp_path / "cli", "--system_root", root,
                   "--python_roots", py, "--kinds", "latex", "--sources", "texlive_doc",
                   "--min_doc_chars", "20", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "cli/manifest.json").read_text())["kinds"]["latex"]["n_docs"] > 0
    assert_user_error(run_cli("data", "corpora", "--kinds", "poetry"), "poetry", "kind")


def test_split_documents_cuts_long_lines_at_sentence_ends():
    from moelens.data.corpora.readers import split_documents

    line = " ".join(f"Verse number {i} ends here." for i in range(40))
    docs = split_documents(line + "\n\nShort tail paragraph here.", max_chars=200, min_chars=10)
    assert all(len(d) <= 200 for d in docs)
    assert all(d.endswith((".", "here.")) and d[0].isupper() for d in docs)
    assert "".join(docs).replace(" ", "").replace("\n", "") == (
        line + "Short tail paragraph here.").replace(" ", "")


def test_install_is_refused_for_a_fake_root(tmp_path, fake_tree):
    logs = []
    cfg = config(tmp_path, fake_tree, kinds=["latex"], sources=["texlive_doc"], install=True)
    build_corpora(cfg, logs.append)
    assert any("--install ignored" in line for line in logs)
