"""Chess game generation throughput (characters of game text per CPU-second, one process).

Claims checked: the built-in player's throughput on the games the quickstart generates (the
``moelens data chess --n_games 1000 --seed 0`` settings, built-in player), against the
player it replaced (one-ply heuristic with legal-move mobility, no mate search, no
resignation), measured in the same process on the same game seeds, interleaved in chunks so
that load from other processes hits both alike; the length of those games (median plies and
characters, fraction longer than one 1024-character block); and that Stockfish over our own
UCI pipe is faster than the same search through python-chess's engine API. Run:

    PYTHONPATH=src python benchmarks/chess_generation.py [n_games] [n_stockfish_games]

Prints ``name: value`` lines; ratios are new over baseline.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time

import chess
import chess.engine
import numpy as np

from moelens.config import from_dict
from moelens.data.chess.dataset import resolve_spec
from moelens.data.chess.generate import GameSpec, play_game
from moelens.data.chess.players import (
    MATE_CP,
    PIECE_CP,
    Book,
    BuiltinPlayer,
    StockfishPlayer,
    find_stockfish,
    softmax_pick,
)
from moelens.data.commands import ChessDataConfig

BLOCK = 1024


class PreviousBuiltinPlayer:
    """Baseline: the built-in player before games were finished (legal-move mobility, no mate
    search or mop-up); played with ``resign_cp=0`` it gives exactly the games it gave then."""

    name = "builtin-previous"

    @staticmethod
    def _material(board, color):
        return sum(v * board.pieces_mask(p, color).bit_count() for p, v in PIECE_CP.items() if v)

    @staticmethod
    def _hanging(board, color):
        worst = 0
        for sq in chess.scan_reversed(board.occupied_co[color] & ~board.kings):
            attackers = board.attackers_mask(not color, sq)
            if not attackers:
                continue
            value = PIECE_CP[board.piece_type_at(sq)]
            if value <= worst:
                continue
            if board.is_attacked_by(color, sq):
                value -= min(PIECE_CP[board.piece_type_at(a)] or 1000
                             for a in chess.scan_reversed(attackers))
            worst = max(worst, value)
        return worst

    def _evaluate(self, board, move):
        me = board.turn
        board.push(move)
        try:
            replies = board.legal_moves.count()
            check = board.is_check()
            if replies == 0 and check:
                return MATE_CP
            material = self._material(board, me) - self._material(board, not me)
            if replies == 0 or board.is_insufficient_material() or board.is_repetition(3):
                return -abs(material) * 0.5 if material > 0 else 50.0
            score = material - 0.9 * self._hanging(board, me) - 2.0 * replies
            if check:
                score += 30
            if board.piece_type_at(move.to_square) == chess.PAWN:
                rank = chess.square_rank(move.to_square)
                score += 4 * (rank if me == chess.WHITE else 7 - rank)
            return float(score)
        finally:
            board.pop()

    def choose(self, board, rng, depth, temperature):
        moves = list(board.legal_moves)
        return moves[softmax_pick([self._evaluate(board, m) for m in moves], temperature, rng)]

    def new_game(self):
        pass

    def close(self):
        pass


class PythonChessEnginePlayer:
    """Baseline: the same multipv sampling through ``chess.engine.SimpleEngine``."""

    name = "python-chess"

    def __init__(self, binary: str, multipv: int):
        self.engine = chess.engine.SimpleEngine.popen_uci(binary)
        self.engine.configure({"Threads": 1, "Hash": 16})
        self.multipv = multipv

    def new_game(self) -> None:
        self.engine.protocol.send_line("ucinewgame")  # same hash clearing as the pipe player

    def choose(self, board, rng, depth, temperature):
        infos = self.engine.analyse(board, chess.engine.Limit(depth=depth), multipv=self.multipv)
        cands = [(i["score"].relative.score(mate_score=100_000), i["pv"][0]) for i in infos]
        return cands[softmax_pick([s for s, _ in cands], temperature, rng)][1]

    def close(self) -> None:
        self.engine.quit()


def throughput(player, spec: GameSpec, book, n: int) -> float:
    """Characters per wall-clock second (Stockfish's own CPU time is not this process's)."""
    t0 = time.perf_counter()
    chars = sum(len(play_game(i, spec, player, book)) for i in range(n))
    return chars / (time.perf_counter() - t0)


def builtin_versus_previous(spec: GameSpec, book, n: int, chunk: int = 10) -> None:
    """Both built-in players on games 0..n-1 of ``spec``, alternating every ``chunk`` games."""
    runs = {"previous": (PreviousBuiltinPlayer(), dataclasses.replace(spec, resign_cp=0)),
            "builtin": (BuiltinPlayer(), spec)}
    games: dict[str, list[str]] = {k: [] for k in runs}
    cpu = dict.fromkeys(runs, 0.0)
    for start in range(0, n, chunk):
        for name, (player, sp) in runs.items():
            t0 = time.process_time()
            games[name] += [play_game(i, sp, player, book)
                            for i in range(start, min(n, start + chunk))]
            cpu[name] += time.process_time() - t0
    rate = {}
    for name, played in games.items():
        lengths = [len(g) for g in played]
        rate[name] = sum(lengths) / cpu[name]
        print(f"{name}_chars_per_cpu_s: {rate[name]:.0f}")
        print(f"{name}_games_per_cpu_s: {len(played) / cpu[name]:.2f}")
        print(f"{name}_median_plies: {statistics.median(g.count(' ') + 1 for g in played):.0f}")
        print(f"{name}_median_chars: {statistics.median(lengths):.0f}")
        print(f"{name}_longer_than_block: {np.mean([x > BLOCK for x in lengths]):.3f}")
    print(f"builtin_vs_previous_chars_per_cpu_s: {rate['builtin'] / rate['previous']:.2f}")
    print(f"builtin_vs_previous_cpu_s_per_game: "
          f"{(cpu['builtin'] / n) / (cpu['previous'] / n):.2f}")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    n_sf = int(sys.argv[2]) if len(sys.argv) > 2 else 12
    # the quickstart's settings: `moelens data chess --n_games 1000 --seed 0`, built-in player
    spec = resolve_spec(from_dict(ChessDataConfig, {"player": "builtin", "seed": 0}))
    book = Book(spec.book) if spec.book else None
    print(f"games: {n} (seed {spec.seed}, book {spec.book or 'none'}, max_plies "
          f"{spec.max_plies}, resign_cp {spec.resign_cp} for {spec.resign_plies} plies)")
    builtin_versus_previous(spec, book, n)
    sf = find_stockfish()
    if sf is None:
        print("stockfish: not installed (skipped)")
        return
    spec = dataclasses.replace(spec, stockfish=sf, player="stockfish")
    results = {}
    for name, make in [("python_chess_api_multipv3", lambda: PythonChessEnginePlayer(sf, 3)),
                       ("uci_pipe_multipv3", lambda: StockfishPlayer(sf, multipv=3)),
                       ("uci_pipe_multipv1", lambda: StockfishPlayer(sf, multipv=1))]:
        player = make()
        try:
            results[name] = throughput(player, spec, book, n_sf)
        finally:
            player.close()
        print(f"stockfish_{name}_chars_per_s: {results[name]:.0f}")
    base = results["python_chess_api_multipv3"]
    print(f"uci_pipe_vs_python_chess_api: {results['uci_pipe_multipv3'] / base:.2f}")
    pipe3 = results["uci_pipe_multipv3"]
    print(f"multipv1_vs_multipv3: {results['uci_pipe_multipv1'] / pipe3:.2f}")


if __name__ == "__main__":
    main()
