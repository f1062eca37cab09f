"""Import the user's games: PGN files and lichess-style transcript files.

* PGN: read with python-chess; a game is kept when its main line replays legally from the
  standard start position (no ``SetUp``/``FEN``/variant header, no parser errors) and is not empty.
* Transcripts: one ``;1.e4 e5 …`` string per line of a text file, or per row of a CSV column
  (Karvonen's lichess CSVs have a ``transcript`` column). A line may hold several games (a
  1024-character block packs games back to back, each starting with ``;``); each is validated with
  :func:`moelens.data.chess.replay`. A game whose only fault is a last move cut short by the block
  boundary is kept without that move (counted as ``truncated``); any other fault rejects it.

Every rejected game is counted with its reason class; nothing is silently dropped.
"""

from __future__ import annotations

import csv
import io
import sys
from collections import Counter
from pathlib import Path
from typing import Iterator

import chess
import chess.pgn

from moelens.data.chess.vocab import GAME_START, IllegalGame, game_string, replay, trim_partial
from moelens.errors import DataError


def _open_text(path: Path) -> io.TextIOBase:
    if not path.exists():
        raise DataError(f"game file {path} does not exist; check the path")
    if path.is_dir():
        raise DataError(f"game file {path} is a directory; give the files themselves")
    return open(path, encoding="utf-8", errors="replace", newline="")


class _Quiet(chess.pgn.GameBuilder):
    """A game builder that records errors on the game instead of logging them."""

    def handle_error(self, error: Exception) -> None:
        self.game.errors.append(error)


def pgn_games(path: Path, stats: Counter) -> Iterator[str]:
    """Validated game strings of a PGN file; ``stats`` counts accepted and rejected games."""
    with _open_text(path) as fh:
        while True:
            game = chess.pgn.read_game(fh, Visitor=_Quiet)
            if game is None:
                return
            reason = _pgn_problem(game)
            if reason is None:
                sans = []
                board = chess.Board()
                for move in game.mainline_moves():
                    sans.append(board.san(move))
                    board.push(move)
                text = game_string(sans)
                try:
                    replay(text)
                except IllegalGame:
                    reason = "illegal"
            if reason is None:
                stats["accepted"] += 1
                yield text
            else:
                stats[f"rejected_{reason}"] += 1


def _pgn_problem(game: chess.pgn.Game) -> str | None:
    headers = game.headers
    if headers.get("SetUp") == "1" or "FEN" in headers:
        return "not_standard_start"
    if headers.get("Variant", "standard").lower() not in ("standard", "chess", "from position"):
        return "variant"
    if game.errors:
        return "illegal"
    if game.next() is None:
        return "empty"
    return None


def _transcript_lines(path: Path, column: str) -> Iterator[str]:
    with _open_text(path) as fh:
        if path.suffix.lower() == ".csv":
            csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or column not in reader.fieldnames:
                raise DataError(f"{path} has no column {column!r} (columns: "
                                f"{', '.join(reader.fieldnames or [])}); set --transcript_column")
            for row in reader:
                yield row[column] or ""
        else:
            for line in fh:
                yield line.rstrip("\r\n")


def transcript_games(path: Path, column: str, stats: Counter) -> Iterator[str]:
    """Validated games of a transcript file (one or more ``;``-started games per line)."""
    for line in _transcript_lines(path, column):
        line = line.strip()
        if not line:
            continue
        pieces = line.split(GAME_START)
        if pieces[0].strip():
            stats["rejected_format"] += 1  # text before the first ';'
        for piece in pieces[1:]:
            text = GAME_START + piece.rstrip(" ")
            game = _validate(text, stats)
            if game is not None:
                yield game


def _validate(text: str, stats: Counter) -> str | None:
    try:
        replay(text)
    except IllegalGame as exc:
        if exc.partial:
            trimmed = trim_partial(text)
            if len(trimmed) > 1:
                try:
                    replay(trimmed)
                except IllegalGame:
                    pass
                else:
                    stats["accepted"] += 1
                    stats["truncated"] += 1
                    return trimmed
        kind = "vocab" if "outside the vocabulary" in str(exc) else "illegal"
        stats[f"rejected_{kind}"] += 1
        return None
    stats["accepted"] += 1
    return text
