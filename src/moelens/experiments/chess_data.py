"""The data stages of the chess experiment: played games, random-move games, held-out games.

Games are played by Stockfish or the built-in player (``moelens data chess``'s library) and
packed into blocks of ``block_size`` characters, so every training example starts at a game's
start (only the first ``max_chars`` characters are ever scored). The validation split is the
held-out games: its blocks give the validation loss, and ``games_eval.txt`` (each game cut to its
first ``max_chars`` characters, at a move boundary) is what every model is captured and scored on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moelens.rundir import atomic_write_text

EVAL_GAMES = "games_eval.txt"


def cut_game(game: str, max_chars: int) -> str:
    """The game's first ``max_chars`` characters, ending at a move boundary (whole moves only)."""
    if len(game) <= max_chars:
        return game
    head = game[:max_chars + 1]
    return head[:head.rfind(" ")] if " " in head else game[:max_chars]


def count_games(pgn: list[Path], transcripts: list[Path]) -> int:
    """Games in the files to import (PGN: '[Event' headers; transcripts: non-empty lines)."""
    from moelens.errors import DataError

    n = 0
    for path, mark in [(p, "[Event ") for p in pgn] + [(p, "") for p in transcripts]:
        if not path.is_file():
            raise DataError(f"game file {path} does not exist; check --games.import_files")
        with open(path, encoding="utf-8", errors="replace") as fh:
            n += sum(1 for line in fh if line.strip() and line.startswith(mark))
    return n


def _data_config(out: Path, cfg: Any, **kw):
    from moelens.data.commands import ChessDataConfig

    g = cfg.games
    return ChessDataConfig(out=out, seed=g.seed, workers=g.workers, player=g.player, book="none",
                           max_plies=g.max_plies, block_size=g.block_size, quiet=cfg.quiet, **kw)


def chess_games(stage: Path, cfg: Any) -> dict[str, Any]:
    """Play (or resume playing) the games, split off the held-out ones, write games_eval.txt."""
    from moelens.data.chess.dataset import build_chess
    from moelens.data.tokens import TokenData

    from moelens.errors import DataError

    g = cfg.games
    generated = g.n_games + g.eval_games if g.n_games else 0
    pgn = [Path(p) for p in g.import_files if Path(p).suffix.lower() == ".pgn"]
    transcripts = [Path(p) for p in g.import_files if Path(p).suffix.lower() != ".pgn"]
    total = generated + count_games(pgn, transcripts)
    if total <= g.eval_games:
        raise DataError(f"{total} games cannot hold out {g.eval_games}; import or generate more "
                        "games, or lower --games.eval_games")
    data = stage / "data"
    build_chess(_data_config(data, cfg, n_games=generated, pgn=pgn, transcripts=transcripts,
                             val_fraction=g.eval_games / total))
    held_out = (data / "games_val.txt").read_text().splitlines()
    cut = [cut_game(x, cfg.score.max_chars) for x in held_out if x.strip()]
    atomic_write_text(stage / EVAL_GAMES, "\n".join(cut) + "\n")
    meta = TokenData(data).meta
    return {"train_chars": meta["n_train"], "val_chars": meta["n_val"],
            "eval_games": len(cut)}


def random_move_games(stage: Path, cfg: Any) -> dict[str, Any]:
    """Random-move games in the same block format (the probe control's training data)."""
    from moelens.data.chess.dataset import build_chess
    from moelens.data.chess.random_games import random_games
    from moelens.data.tokens import TokenData

    g = cfg.games
    games = stage / "random_games.txt"
    if not games.exists():
        atomic_write_text(games, "\n".join(random_games(g.random_games, g.seed + 1,
                                                        g.max_plies)) + "\n")
    data = stage / "data"
    build_chess(_data_config(data, cfg, n_games=0, transcripts=[games], val_fraction=0.05))
    meta = TokenData(data).meta
    return {"train_chars": meta["n_train"], "val_chars": meta["n_val"]}
