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
MOP_UP_LEAD = 400
"""material lead (centipawns) from which the built-in player steers for a mate (mop-up, mate
search)..."""
MOP_UP_DEFENDER = 1300
"""...while the defender keeps at most this much material (an ending, not a middlegame)"""
PASSED_PAWN_CP = 12
"""bonus per rank advanced for pushing a passed pawn once the opponent is down to an ending"""
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
    own = board.occupied_co[color]
    return (100 * (board.pawns & own).bit_count() + 320 * (board.knights & own).bit_count()
            + 330 * (board.bishops & own).bit_count() + 500 * (board.rooks & own).bit_count()
            + 900 * (board.queens & own).bit_count())


def material_balance(board: chess.Board) -> int:
    """White's material minus Black's, in centipawns (kings not counted)."""
    return _material(board, chess.WHITE) - _material(board, chess.BLACK)


_BY_VALUE = (chess.QUEEN, chess.ROOK, chess.BISHOP, chess.KNIGHT, chess.PAWN)


def _hanging(board: chess.Board, color: chess.Color) -> int:
    """What ``color`` stands to lose to one capture by the side to move (crude exchange).
    Pieces are visited from the most valuable down, stopping once none can lose more than
    the worst loss found: the same answer for far fewer attacker look-ups."""
    worst = 0
    enemy = not color
    for piece in _BY_VALUE:
        value = PIECE_CP[piece]
        if value <= worst:
            break
        for sq in chess.scan_reversed(board.pieces_mask(piece, color)):
            attackers = board.attackers_mask(enemy, sq)
            if not attackers:
                continue
            loss = value
            if board.is_attacked_by(color, sq):
                loss -= min(PIECE_CP[board.piece_type_at(a)] or 1000  # type: ignore[index]
                            for a in chess.scan_reversed(attackers))
            worst = max(worst, loss)
    return worst


def _mobility(board: chess.Board, color: chess.Color) -> tuple[int, int]:
    """Pseudo-legal move count of ``color`` (squares its pieces attack that they do not
    occupy, plus single pawn pushes; no castling, pins or checks), as (king, other pieces).
    Counting legal moves instead costs a full move generation per candidate, over half of
    the player's time."""
    own = board.occupied_co[color]
    pawns = board.pawns & own
    pushed = (pawns << 8) if color == chess.WHITE else (pawns >> 8)
    others = (pushed & ~board.occupied & chess.BB_ALL).bit_count()
    king = 0
    for sq in chess.scan_reversed(own & ~board.pawns):
        n = (board.attacks_mask(sq) & ~own).bit_count()
        if board.kings & chess.BB_SQUARES[sq]:
            king = n
        else:
            others += n
    return king, others


def _front_spans() -> dict[chess.Color, list[int]]:
    """Per colour and square: the squares ahead of a pawn there on its own and the adjacent
    files, where an enemy pawn would stop it being a passed pawn."""
    spans: dict[chess.Color, list[int]] = {chess.WHITE: [], chess.BLACK: []}
    for sq in chess.SQUARES:
        f, r = chess.square_file(sq), chess.square_rank(sq)
        files = 0
        for df in (-1, 0, 1):
            if 0 <= f + df < 8:
                files |= chess.BB_FILES[f + df]
        ahead_w = ahead_b = 0
        for rank in range(8):
            if rank > r:
                ahead_w |= chess.BB_RANKS[rank]
            elif rank < r:
                ahead_b |= chess.BB_RANKS[rank]
        spans[chess.WHITE].append(files & ahead_w)
        spans[chess.BLACK].append(files & ahead_b)
    return spans


_FRONT_SPAN = _front_spans()


def _center_distance(square: chess.Square) -> int:
    """Steps (files plus ranks) from ``square`` to the four centre squares: 0 to 6."""
    f, r = chess.square_file(square), chess.square_rank(square)
    return max(3 - f, f - 4) + max(3 - r, r - 4)


def _is_draw(board: chess.Board, stalemate_possible: bool) -> bool:
    """Insufficient material, a threefold repetition or (when ``stalemate_possible``) a
    stalemate, for the side to move, who is not in check."""
    if board.is_insufficient_material():
        return True
    if board.halfmove_clock >= 4 and board.is_repetition(3):  # a reversible move is needed
        return True
    return stalemate_possible and not any(board.generate_legal_moves())


def evaluate_move(board: chess.Board, move: chess.Move) -> float:
    """Centipawn score of ``move`` for the mover: material, the worst piece left hanging,
    the opponent's mobility, checks, pawn advances and, when well ahead in an ending, driving
    the enemy king to the edge (mop-up); mates and draws decided outright."""
    me = board.turn
    board.push(move)
    try:
        check = board.is_check()
        material = _material(board, me) - _material(board, not me)
        if check:
            replies = board.legal_moves.count()  # evasions only: cheap, and needed for mate
            if replies == 0:
                return MATE_CP
        else:
            king, others = _mobility(board, not me)
            # a stalemate needs the other pieces stuck: only then is the (costly) exact test run
            # (missed: stalemates where every other piece is pinned, which are very rare)
            if _is_draw(board, stalemate_possible=others == 0):
                return -abs(material) * 0.5 if material > 0 else 50.0  # draw: avoid when ahead
            replies = king + others
        score = material - 0.9 * _hanging(board, me) - 2.0 * replies
        if check:
            score += 30
        theirs_left = _material(board, not me)
        if board.piece_type_at(move.to_square) == chess.PAWN:
            rank = chess.square_rank(move.to_square)
            advance = rank if me == chess.WHITE else 7 - rank
            score += 4 * advance
            if theirs_left <= MOP_UP_DEFENDER and not \
                    board.pawns & board.occupied_co[not me] & _FRONT_SPAN[me][move.to_square]:
                score += PASSED_PAWN_CP * advance  # an ending: a passed pawn runs to promote
        if material >= MOP_UP_LEAD and theirs_left <= MOP_UP_DEFENDER:
            theirs, mine = board.king(not me), board.king(me)
            score += 12 * _center_distance(theirs) \
                + 6 * (14 - chess.square_manhattan_distance(theirs, mine))  # type: ignore[arg-type]
        return float(score)
    finally:
        board.pop()


def mate_in_one(board: chess.Board) -> chess.Move | None:
    """A legal move of the side to move that mates at once, or None (checks tried only)."""
    for move in board.legal_moves:
        if board.gives_check(move):
            board.push(move)
            mate = board.is_checkmate()
            board.pop()
            if mate:
                return move
    return None


def mate_in_two(board: chess.Board) -> chess.Move | None:
    """A checking move after which every reply allows a mate in one, or None. Only checks are
    tried first (forcing lines): cheap enough to run on every move of a won ending."""
    for move in list(board.legal_moves):
        if not board.gives_check(move):
            continue
        board.push(move)
        try:
            replies = list(board.legal_moves)
            forced = bool(replies)  # no reply: that was mate in one, found by evaluate_move
            for reply in replies:
                board.push(reply)
                found = mate_in_one(board)
                board.pop()
                if found is None:
                    forced = False
                    break
        finally:
            board.pop()
        if forced:
            return move
    return None


class BuiltinPlayer:
    """One-ply material + mobility heuristic with softmax sampling, a mate-in-two search when
    well ahead in an ending, and mop-up steering there: no engine needed."""

    name = "builtin"

    def choose(self, board: chess.Board, rng: np.random.Generator, depth: int,
               temperature: float) -> chess.Move:
        moves = list(board.legal_moves)
        scores = [evaluate_move(board, m) for m in moves]
        if max(scores) < MATE_CP and self._winning_ending(board):
            mate = mate_in_two(board)
            if mate is not None:
                return mate
        return moves[softmax_pick(scores, temperature, rng)]

    @staticmethod
    def _winning_ending(board: chess.Board) -> bool:
        me = board.turn
        theirs = _material(board, not me)
        return theirs <= MOP_UP_DEFENDER and _material(board, me) - theirs >= MOP_UP_LEAD

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

