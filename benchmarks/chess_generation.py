"""Chess game generation throughput (characters of game text per second, one process).

Claims checked: Stockfish over our own UCI pipe is faster than the same search through
python-chess's engine API, and the built-in player's throughput. Run:

    PYTHONPATH=src python benchmarks/chess_generation.py [n_games]

Prints ``name: value`` lines; ratios are against the python-chess engine API baseline measured
in the same process on the same game seeds.
"""

from __future__ import annotations

import sys
import time

import chess
import chess.engine

from moelens.data.chess.generate import GameSpec, play_game
from moelens.data.chess.players import (Book, BuiltinPlayer, StockfishPlayer, find_book,
                                        find_stockfish, softmax_pick)


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
    t0 = time.perf_counter()
    chars = sum(len(play_game(i, spec, player, book)) for i in range(n))
    return chars / (time.perf_counter() - t0)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    book_path = find_book()
    book = Book(book_path) if book_path else None
    sf = find_stockfish()
    spec = GameSpec(seed=0, player="builtin", stockfish=sf, multipv=3, depth_min=1, depth_max=5,
                    temperature_min=10.0, temperature_max=60.0, book=book_path, book_plies=16,
                    random_plies=4, max_plies=300)
    builtin = throughput(BuiltinPlayer(), spec, book, n)
    print(f"builtin_chars_per_s: {builtin:.0f}")
    if sf is None:
        print("stockfish: not installed (skipped)")
        return
    results = {}
    for name, make in [("python_chess_api_multipv3", lambda: PythonChessEnginePlayer(sf, 3)),
                       ("uci_pipe_multipv3", lambda: StockfishPlayer(sf, multipv=3)),
                       ("uci_pipe_multipv1", lambda: StockfishPlayer(sf, multipv=1))]:
        player = make()
        try:
            results[name] = throughput(player, spec, book, n)
        finally:
            player.close()
        print(f"stockfish_{name}_chars_per_s: {results[name]:.0f}")
    base = results["python_chess_api_multipv3"]
    print(f"uci_pipe_vs_python_chess_api: {results['uci_pipe_multipv3'] / base:.2f}")
    pipe3 = results["uci_pipe_multipv3"]
    print(f"multipv1_vs_multipv3: {results['uci_pipe_multipv1'] / pipe3:.2f}")
    print(f"builtin_vs_stockfish_pipe: {builtin / results['uci_pipe_multipv3']:.2f}")


if __name__ == "__main__":
    main()
