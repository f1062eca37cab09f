"""Chess concepts on PGN movetext as the chess models see it (``;1.e4 e5 2.Nf3 Nc6 …``).

These are character-level concepts of the notation itself. :func:`iter_moves` splits the text
into numbered plies with their character spans; it is the extension point for board-state
concepts: a later module can replay the SAN moves with python-chess (``board.push_san``) and
register concepts whose spans are the plies where a board property holds (``register(Concept(
"board", ...))``), without changing anything here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from moelens.data.concepts.labelling import regex_labeller
from moelens.data.concepts.registry import Concept, Span, register

GROUP = "chess"
_MOVE_RE = re.compile(r"(?<![0-9])([0-9]+)(\.+)[ \t]*([^\s;]+)(?:[ \t]+(?![0-9]+\.)([^\s;]+))?")


@dataclass(frozen=True)
class Ply:
    """One half-move: its number (1-based), side, SAN text and the SAN's character span."""

    move_number: int
    white: bool
    san: str
    span: Span


def iter_moves(text: str) -> list[Ply]:
    """The plies of every game in ``text`` in order (games separated by ``;``)."""
    out = []
    for m in _MOVE_RE.finditer(text):
        number = int(m.group(1))
        black_only = len(m.group(2)) > 1  # "12...Nf6" continues a game with Black to move
        out.append(Ply(number, not black_only, m.group(3), m.span(3)))
        if m.group(4) is not None and not black_only:
            out.append(Ply(number, False, m.group(4), m.span(4)))
    return out


def _side(white: bool):
    def label(text: str) -> list[Span]:
        return [p.span for p in iter_moves(text) if p.white == white]

    return label


def _in_moves(pattern: str):
    """Matches of ``pattern`` inside SAN moves only (move numbers and separators excluded)."""
    compiled = re.compile(pattern)

    def label(text: str) -> list[Span]:
        out = []
        for p in iter_moves(text):
            for m in compiled.finditer(text, p.span[0], p.span[1]):
                out.append(m.span())
        return out

    return label


CONCEPTS = [
    ("move_number", "the digits of a move number", regex_labeller(r"[0-9]+(?=\.)")),
    ("move_dot", "the '.' after a move number", regex_labeller(r"(?<=[0-9])\.+")),
    ("capture", "the capture sign x", _in_moves(r"x")),
    ("check", "the check sign +", _in_moves(r"\+")),
    ("mate", "the mate sign #", _in_moves(r"#")),
    ("castling", "castling O-O or O-O-O", _in_moves(r"O-O(?:-O)?")),
    ("promotion", "a promotion =Q (sign and piece)", _in_moves(r"=[QRBN]")),
    ("piece_letter", "a piece letter K Q R B N", _in_moves(r"[KQRBN]")),
    ("file_char", "a file character a-h", _in_moves(r"[a-h]")),
    ("rank_char", "a rank character 1-8", _in_moves(r"[1-8]")),
    ("white_move", "the SAN text of a White move", _side(True)),
    ("black_move", "the SAN text of a Black move", _side(False)),
]

# Not part of the paper: registered for the fixed variant only.
for _name, _desc, _fn in CONCEPTS:
    register(Concept(GROUP, _name, _desc, _fn, paper_faithful=False))
