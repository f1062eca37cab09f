"""Board-state labels of a games file: every BSP function at every scored position, cached.

:func:`compute_labels` turns a list of game strings into :class:`BoardLabels` (the position
table plus, per BSP function, a bool array [n_positions, rows·cols·classes] with the cells in
(row, col, class) C order). The piece and square functions are built from bitboards for all
positions at once; the flags go board by board. :func:`labels_for_file` caches the result next
to the games file (or in a given directory), keyed by the file's sha256 and the settings, so
scoring several models on one games file computes the labels once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import chess
import numpy as np

from moelens.data.chess import bsp
from moelens.data.chess.positions import MAX_CHARS, MAX_POSITIONS, games_positions
from moelens.data.chess.vocab import GAME_START, outside_vocab
from moelens.errors import DataError
from moelens.rundir import atomic_path, sha256_file

LABELS_VERSION = 1
"""Bumped whenever a BSP definition changes, so old caches are not reused."""


@dataclass
class BoardLabels:
    """Positions of a set of games and the BSP labels at each."""

    game_index: np.ndarray
    """int64 [n_positions]: index of the position's game in the games list."""
    char_index: np.ndarray
    """int64 [n_positions]: index of the position's "." in the game string."""
    labels: dict[str, np.ndarray]
    """BSP function name → bool [n_positions, rows·cols·classes] (order of BSP_FUNCTIONS)."""
    n_games: int
    """Games given, legal or not."""
    skipped: np.ndarray
    """int64: indices of the games that did not replay and were skipped."""

    @property
    def n_positions(self) -> int:
        return len(self.game_index)

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)


def _unpack(masks: np.ndarray) -> np.ndarray:
    """uint64 [..., k] bitmasks → bool [..., k, 64] with bit s at index s (square order)."""
    as_bytes = masks.astype("<u8")[..., None].view(np.uint8)
    return np.unpackbits(as_bytes, axis=-1, bitorder="little").astype(bool)


def _batched(boards: list[chess.Board]) -> dict[str, np.ndarray]:
    n = len(boards)
    pm = np.zeros((n, 12), dtype=np.uint64)
    sq = np.zeros((n, 4), dtype=np.uint64)  # unchanged, threat, legal, pseudo-legal
    for i, b in enumerate(boards):
        pm[i] = [b.pieces_mask(t, c) for c in (chess.WHITE, chess.BLACK) for t in chess.PIECE_TYPES]
        sq[i] = [bsp.unchanged_squares(b), bsp.attacked_by(b, not b.turn),
                 bsp.move_targets(b.legal_moves), bsp.move_targets(b.pseudo_legal_moves)]
    pieces = _unpack(pm)                                   # [n, 12, 64]
    blank = ~pieces.any(axis=1)                            # [n, 64]
    full = np.concatenate([pieces, blank[:, None]], axis=1).transpose(0, 2, 1)  # [n, 64, 13]
    masked = full.copy()
    masked[:, :, bsp.BLANK] = False
    initial = masked & ~_unpack(sq[:, 0:1])[:, 0, :, None]
    color = np.stack([pieces[:, :6].any(axis=1), pieces[:, 6:].any(axis=1), blank], axis=2)
    squares = _unpack(sq[:, 1:])                           # [n, 3, 64]
    return {
        "piece": full.reshape(n, -1),
        "piece_masked_blank": masked.reshape(n, -1),
        "piece_masked_blank_and_initial": initial.reshape(n, -1),
        "piece_color": color.reshape(n, -1),
        "threat": squares[:, 0],
        "legal_moves": squares[:, 1],
        "pseudo_legal_moves": squares[:, 2],
    }


def labels_of_boards(boards: list[chess.Board]) -> dict[str, np.ndarray]:
    """All 23 BSP functions for a list of boards: name → bool [n, rows·cols·classes]."""
    out = _batched(boards)
    for name, f in bsp.BSP_FUNCTIONS.items():
        if name in out:
            continue
        arr = np.zeros((len(boards), f.n_cells), dtype=bool)
        for i, b in enumerate(boards):
            arr[i] = f.fn(b).reshape(-1)
        out[name] = arr
    return {name: out[name] for name in bsp.BSP_FUNCTIONS}


def compute_labels(games: list[str], max_positions: int = MAX_POSITIONS,
                   max_chars: int = MAX_CHARS) -> BoardLabels:
    """Positions and labels of a list of game strings; illegal games are skipped and counted."""
    pos = games_positions(games, max_positions, max_chars)
    return BoardLabels(np.asarray(pos.game_index, dtype=np.int64),
                       np.asarray(pos.char_index, dtype=np.int64),
                       labels_of_boards(pos.boards), len(games),
                       np.asarray(pos.skipped, dtype=np.int64))


def read_games(path: str | Path) -> list[str]:
    """The games of a games file: one per non-empty line, surrounding whitespace stripped.

    A line that is not a game string at all (it must start with ';' and use only the 32 chess
    characters) is a DataError naming the line; a game string whose moves do not replay is
    kept here and skipped (and counted) when positions are computed."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"games file {path} does not exist; pass a file with one game per line")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"games file {path} is not text; pass a file with one ';1.e4 e5 ...' "
                        "game per line") from None
    games = []
    for n, line in enumerate(lines, 1):
        game = line.strip()
        if not game:
            continue
        bad = outside_vocab(game)
        if not game.startswith(GAME_START) or bad:
            why = (f"characters {''.join(sorted(bad))!r} are not chess moves" if bad
                   else "it does not start with ';'")
            raise DataError(f"{path}:{n} is not a game string ({why}); write one game per line "
                            "as ';1.e4 e5 2.Nf3 ...'")
        games.append(game)
    if not games:
        raise DataError(f"games file {path} holds no games; write one ';1.e4 e5 ...' per line")
    return games


def cache_key(file_sha256: str, max_positions: int, max_chars: int) -> str:
    """The cache key: the games file's content hash, the settings and the label version."""
    spec = {"sha256": file_sha256, "max_positions": max_positions, "max_chars": max_chars,
            "version": LABELS_VERSION, "functions": list(bsp.BSP_FUNCTIONS)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _save(path: Path, lab: BoardLabels, key: str) -> None:
    arrays = {"game_index": lab.game_index, "char_index": lab.char_index,
              "skipped": lab.skipped, "n_games": np.int64(lab.n_games),
              "key": np.array(key)}
    for name, arr in lab.labels.items():
        arrays["bits_" + name] = np.packbits(arr, axis=1)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def _load(path: Path, key: str) -> BoardLabels | None:
    try:
        with np.load(path) as z:
            if str(z["key"]) != key:
                return None
            labels = {name: np.unpackbits(z["bits_" + name], axis=1,
                                          count=f.n_cells).astype(bool)
                      for name, f in bsp.BSP_FUNCTIONS.items()}
            return BoardLabels(z["game_index"], z["char_index"], labels, int(z["n_games"]),
                               z["skipped"])
    except (OSError, KeyError, ValueError):
        return None  # unreadable or from another layout: recompute


def labels_for_file(path: str | Path, cache_dir: str | Path | None = None,
                    max_positions: int = MAX_POSITIONS, max_chars: int = MAX_CHARS) -> BoardLabels:
    """Labels of a games file, reused from its cache when the file and settings are unchanged.

    The cache is ``<cache_dir or the file's folder>/<file name>.bsp-<key>.npz``; a changed file
    has another key, so its old cache is ignored (and removed when the new one is written)."""
    path = Path(path)
    games = read_games(path)
    key = cache_key(sha256_file(path), max_positions, max_chars)
    folder = Path(cache_dir) if cache_dir is not None else path.parent
    cache = folder / f"{path.name}.bsp-{key[:20]}.npz"
    if cache.is_file():
        hit = _load(cache, key)
        if hit is not None:
            return hit
    lab = compute_labels(games, max_positions, max_chars)
    _save(cache, lab, key)
    for stale in folder.glob(f"{path.name}.bsp-*.npz"):
        if stale != cache:
            stale.unlink(missing_ok=True)
    return lab
