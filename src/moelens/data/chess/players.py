"""Move choosers for game generation: Stockfish over a UCI pipe, a built-in heuristic, a book.

Every random choice is drawn from a ``numpy.random.Generator`` handed in by the caller, one per
game, so a game depends only on its own seed. Stockfish's own "Skill Level" is *not* used: it
draws from a time-seeded generator inside the engine. Instead the engine reports its best
``multipv`` lines at a fixed depth (deterministic with one thread and a cleared hash) and we
sample among them with a softmax over their scores, which gives varied, still sensible play.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import chess
import chess.polyglot
import numpy as np

from moelens.errors import DataError

PIECE_CP = {chess.PAWN: 100, chess.KNIGHT: 320, chess.BISHOP: 330, chess.ROOK: 500,
            chess.QUEEN: 900, chess.KING: 0}
MATE_CP = 100_000
BOOK_PATHS = ("/usr/share/games/gnuchess/book.bin", "/usr/share/gnuchess/book.bin",
              "/usr/local/share/gnuchess/book.bin")
STOCKFISH_PATHS = ("/usr/games/stockfish", "/usr/local/bin/stockfish", "/usr/bin/stockfish")


def find_stockfish(path: str = "auto") -> str | None:
    """The Stockfish binary: ``path`` itself, or for ``auto`` PATH then Debian's /usr/games."""
    if path != "auto":
        return shutil.which(path) or (path if Path(path).is_file() else None)
    found = shutil.which("stockfish")
    return found or next((p for p in STOCKFISH_PATHS if Path(p).is_file()), None)


def find_book(path: str = "auto") -> str | None:
    """A polyglot opening book: ``path``, for ``auto`` the Debian gnuchess-book one, or None."""
    if path == "none":
        return None
    if path != "auto":
        if not Path(path).is_file():
            raise DataError(f"opening book {path} does not exist; give a polyglot .bin file, "
                            "'auto' or 'none'")
        return path
    return next((p for p in BOOK_PATHS if Path(p).is_file()), None)


def softmax_pick(scores: list[float], temperature: float, rng: np.random.Generator) -> int:
    """Index drawn with probability ∝ exp(score / temperature) (scores in centipawns)."""
    top = max(scores)
    weights = np.exp((np.asarray(scores, dtype=np.float64) - top) / max(temperature, 1e-6))
    return int(rng.choice(len(scores), p=weights / weights.sum()))


# ---------------------------------------------------------------- opening


class Book:
    """Weighted moves from a polyglot book, drawn with the game's generator."""

    def __init__(self, path: str):
        self.path = path
        self.reader = chess.polyglot.open_reader(path)

    def move(self, board: chess.Board, rng: np.random.Generator) -> chess.Move | None:
        entries = [e for e in self.reader.find_all(board) if e.weight > 0]
        if not entries:
            return None
        w = np.asarray([e.weight for e in entries], dtype=np.float64)
        return entries[int(rng.choice(len(entries), p=w / w.sum()))].move

    def close(self) -> None:
        self.reader.close()


# ---------------------------------------------------------------- built-in player


def _material(board: chess.Board, color: chess.Color) -> int:
    return sum(v * board.pieces_mask(p, color).bit_count() for p, v in PIECE_CP.items() if v)


def _hanging(board: chess.Board, color: chess.Color) -> int:
    """What ``color`` stands to lose to one capture by the side to move (crude exchange)."""
    worst = 0
    enemy = not color
    for sq in chess.scan_reversed(board.occupied_co[color] & ~board.kings):
        attackers = board.attackers_mask(enemy, sq)
        if not attackers:
            continue
        value = PIECE_CP[board.piece_type_at(sq)]  # type: ignore[index]
        if value <= worst:
            continue
        if board.is_attacked_by(color, sq):
            value -= min(PIECE_CP[board.piece_type_at(a)] or 1000  # type: ignore[index]
                         for a in chess.scan_reversed(attackers))
        worst = max(worst, value)
    return worst


def evaluate_move(board: chess.Board, move: chess.Move) -> float:
    """Centipawn score of ``move`` for the mover: material, the worst piece left hanging,
    the opponent's mobility, checks, pawn advances; mates and draws decided outright."""
    me = board.turn
    board.push(move)
    try:
        replies = board.legal_moves.count()
        check = board.is_check()
        if replies == 0 and check:
            return MATE_CP
        material = _material(board, me) - _material(board, not me)
        if replies == 0 or board.is_insufficient_material() or board.is_repetition(3):
            return -abs(material) * 0.5 if material > 0 else 50.0  # draw: avoid when ahead
        score = material - 0.9 * _hanging(board, me) - 2.0 * replies
        if check:
            score += 30
        if board.piece_type_at(move.to_square) == chess.PAWN:
            rank = chess.square_rank(move.to_square)
            score += 4 * (rank if me == chess.WHITE else 7 - rank)
        return float(score)
    finally:
        board.pop()


class BuiltinPlayer:
    """One-ply material + mobility heuristic with softmax sampling: no engine needed."""

    name = "builtin"

    def choose(self, board: chess.Board, rng: np.random.Generator, depth: int,
               temperature: float) -> chess.Move:
        moves = list(board.legal_moves)
        scores = [evaluate_move(board, m) for m in moves]
        return moves[softmax_pick(scores, temperature, rng)]

    def new_game(self) -> None:
        pass

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- Stockfish


class StockfishPlayer:
    """Stockfish driven directly over its UCI pipe (2-3x faster than python-chess's engine API)."""

    name = "stockfish"

    def __init__(self, binary: str, multipv: int = 3, hash_mb: int = 16):
        self.binary = binary
        self.multipv = multipv
        try:
            self.proc = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True, bufsize=1)
        except OSError as exc:
            raise DataError(f"cannot start Stockfish at {binary}: {exc}; check the path") from None
        self._send("uci")
        self.version = "stockfish"
        for line in self._until("uciok"):
            if line.startswith("id name "):
                self.version = line[len("id name "):].strip()
        for opt, val in (("Threads", 1), ("Hash", hash_mb), ("MultiPV", multipv)):
            self._send(f"setoption name {opt} value {val}")
        self._sync()

    def _send(self, cmd: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def _until(self, prefix: str):
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise DataError(f"Stockfish at {self.binary} exited unexpectedly; check the binary")
            yield line
            if line.startswith(prefix):
                return

    def _sync(self) -> None:
        self._send("isready")
        for _ in self._until("readyok"):
            pass

    def new_game(self) -> None:
        """Clear the hash so a game never depends on the games this process played before."""
        self._send("ucinewgame")
        self._sync()

    def choose(self, board: chess.Board, rng: np.random.Generator, depth: int,
               temperature: float) -> chess.Move:
        moves = " ".join(m.uci() for m in board.move_stack)
        self._send(f"position startpos moves {moves}" if moves else "position startpos")
        self._send(f"go depth {depth}")
        lines: dict[int, tuple[float, str]] = {}
        best = None
        for line in self._until("bestmove"):
            if line.startswith("bestmove"):
                best = line.split()[1]
                break
            parsed = _parse_info(line)
            if parsed is not None:
                lines[parsed[0]] = parsed[1:]
        if not lines:
            return chess.Move.from_uci(best)  # type: ignore[arg-type]
        cands = [lines[k] for k in sorted(lines)]
        pick = softmax_pick([s for s, _ in cands], temperature, rng)
        return chess.Move.from_uci(cands[pick][1])

    def close(self) -> None:
        try:
            self._send("quit")
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            self.proc.kill()


def _parse_info(line: str) -> tuple[int, float, str] | None:
    """(multipv, score in centipawns for the side to move, first move) of a UCI info line."""
    if not line.startswith("info ") or " pv " not in line or " score " not in line:
        return None
    f = line.split()
    if "lowerbound" in f or "upperbound" in f:
        return None
    mpv = int(f[f.index("multipv") + 1]) if "multipv" in f else 1
    i = f.index("score")
    kind, val = f[i + 1], int(f[i + 2])
    score = float(val) if kind == "cp" else math.copysign(MATE_CP - 100 * abs(val), val or -1)
    return mpv, score, f[f.index("pv") + 1]

