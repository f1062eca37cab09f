"""Turning source files into documents: decoding, splitting, and plain-prose extraction."""

from __future__ import annotations

import gzip
import html
import re
import subprocess
from pathlib import Path

from moelens.errors import DataError

_BIBLE_LINE = re.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$")
_TAG_RE = re.compile(r"<[^>]+>")


def read_text(path: Path, reader: str) -> str:
    """The text of one file (``gz`` also reads plain files; undecodable bytes replaced)."""
    if reader == "bible":
        return "\n\n".join(bible_chapters(path))
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path} is not a valid gzip file ({exc}); reinstall its package") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # older TeX and C files are often Latin-1
        text = raw.decode("latin-1")
    text = text.replace("\r\n", "\n")
    if reader == "html":
        text = html.unescape(_TAG_RE.sub(" ", text))
    return text


def bible_chapters(data_file: Path) -> list[str]:
    """One text per chapter of the KJV, decoded by the ``bible`` program of Debian's bible-kjv."""
    proc = subprocess.run(["bible", "-p", str(data_file.parent), "-f", "Gen1:1-Rev22:21"],
                          capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise DataError(f"the bible program failed on {data_file}: {proc.stderr.strip()[:200]}")
    chapters: dict[tuple[str, str], list[str]] = {}
    for line in proc.stdout.splitlines():
        m = _BIBLE_LINE.match(line.strip())
        if m:
            chapters.setdefault((m.group(1), m.group(2)), []).append(m.group(4).strip())
    return [" ".join(verses) for verses in chapters.values()]


def _cut_point(line: str, max_chars: int) -> int:
    """Where to cut an over-long line: after the last sentence end, else the last space, in
    the second half of the allowed length; hard at ``max_chars`` when there is neither."""
    window = line[:max_chars]
    for marks in ((". ", "! ", "? "), (" ",)):
        best = max(window.rfind(m) for m in marks)
        if best >= max_chars // 2:
            return best + 1
    return max_chars


def _pack(items: list[str], sep: str, max_chars: int) -> list[str]:
    """Join consecutive ``items`` with ``sep`` into chunks of at most ``max_chars`` (an item
    longer than that stays a chunk of its own)."""
    chunks, buf = [], ""
    for item in items:
        if buf and len(buf) + len(sep) + len(item) > max_chars:
            chunks.append(buf)
            buf = item
        else:
            buf = f"{buf}{sep}{item}" if buf else item
    if buf:
        chunks.append(buf)
    return chunks


def split_documents(text: str, max_chars: int, min_chars: int) -> list[str]:
    """Pack consecutive paragraphs into documents of at most ``max_chars`` characters.

    Paragraphs (blank-line separated) stay whole where they fit; a longer paragraph is cut at
    line breaks, and a single longer line after a sentence end or a space (hard only when it has
    neither). Pieces under ``min_chars`` are dropped.
    """
    pieces: list[str] = []
    for para in re.split(r"\n[ \t]*\n", text):
        if not para.strip():
            continue
        if len(para) <= max_chars:
            pieces.append(para)
            continue
        lines = []
        for line in para.split("\n"):
            while len(line) > max_chars:
                cut = _cut_point(line, max_chars)
                lines.append(line[:cut].rstrip())
                line = line[cut:].lstrip()
            lines.append(line)
        pieces.extend(_pack(lines, "\n", max_chars))
    docs = _pack(pieces, "\n\n", max_chars)
    return [d for d in docs if len(d.strip()) >= min_chars]


_MARKUP_LINE = re.compile(r"^\s*(?:\.\.|>>>|\$ |[*=\-~^#|+`:]{2,}|[│├└┌┐┘┤┬┴┼─]|[*\-+] |\d+\. )")
_INLINE_ROLE = re.compile(r":[\w:-]+:`([^`<]*?)(?:\s*<[^`]*>)?`")
_INLINE_MARK = re.compile(r"``([^`]+)``|\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*|`([^`]+)`_?")


def prose_paragraphs(text: str, min_chars: int = 80) -> list[str]:
    """Paragraphs of running prose, reflowed onto one line, markup stripped.

    Used for the POS corpus: tagging is meant for sentences, not tables, code blocks, headings
    or reStructuredText directives, which are dropped.
    """
    out = []
    for para in re.split(r"\n[ \t]*\n", text):
        lines = [l for l in para.split("\n") if l.strip()]
        if not lines or any(_MARKUP_LINE.match(l) for l in lines):
            continue
        if lines[0].startswith((" ", "\t")) and len(lines) > 1 and all(
                l.startswith((" ", "\t")) for l in lines):
            indent = min(len(l) - len(l.lstrip()) for l in lines)
            if indent >= 4:  # a code or literal block
                continue
        flat = " ".join(l.strip() for l in lines)
        flat = _INLINE_ROLE.sub(r"\1", flat)
        flat = _INLINE_MARK.sub(lambda m: next(g for g in m.groups() if g is not None), flat)
        flat = re.sub(r"\s+", " ", flat).strip()
        if len(flat) < min_chars or flat.endswith("::") or not re.search(r"[.!?][\"')]?$", flat):
            continue
        letters = sum(c.isalpha() or c.isspace() for c in flat)
        if letters / len(flat) >= 0.85:
            out.append(flat)
    return out
