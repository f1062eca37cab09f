"""Legal-move rate of a chess model: does its greedy next move exist on the board?

For held-out games, prompts are the game cut just after a "." (White to move) or after the space
that follows White's move (Black to move), so short that the prompt and its answer fit in the
first ``max_chars`` characters (the context the models are scored in). The model continues
greedily, one character at a time, until a space, a "." or ``MAX_MOVE_CHARS`` characters; the
move is legal if python-chess parses it as a legal SAN move on the board at that point (check
marks may be missing or present). A rate near 1 says the model tracks the board
well enough to play by the rules (Karvonen 2024 reports 99.8% for a well-trained 8-layer model).
"""

from __future__ import annotations

from dataclasses import dataclass

import chess
import numpy as np

from moelens.data.chess.positions import replay_tolerant
from moelens.data.chess.vocab import IllegalGame, encode

STOP = (" ", ".")
MAX_MOVE_CHARS = 8
"""The longest move the model may write (e.g. 'exd8=Q+#' has 8 characters)."""


@dataclass(frozen=True)
class Prompt:
    """One prompt: a game prefix and the board it leads to."""

    text: str
    board: chess.Board


def prompts(games: list[str], n: int, seed: int, max_chars: int = 256) -> list[Prompt]:
    """Up to ``n`` prompts drawn (seeded) from the games' move boundaries, each at most
    ``max_chars - MAX_MOVE_CHARS`` characters long; illegal games skipped."""
    cands: list[tuple[int, int, int]] = []  # (game, cut index, plies before it)
    sans_of: dict[int, list[str]] = {}
    for g, text in enumerate(games):
        try:
            sans = replay_tolerant(text)
        except IllegalGame:
            continue
        sans_of[g] = sans
        ply = 0
        for i, c in enumerate(text[:max_chars - MAX_MOVE_CHARS]):
            if c == "." and ply < len(sans):
                cands.append((g, i + 1, ply))           # White to move
            elif c == " " and i > 0 and ply < len(sans):
                ply += 1                                 # a move just ended
                if ply % 2 == 1 and ply < len(sans):
                    cands.append((g, i + 1, ply))       # Black to move
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(cands))[:n]
    out = []
    for j in sorted(pick):
        g, cut, ply = cands[j]
        board = chess.Board()
        for san in sans_of[g][:ply]:
            board.push_san(san)
        out.append(Prompt(games[g][:cut], board))
    return out


def is_legal(board: chess.Board, move: str) -> bool:
    """Whether ``move`` is a legal SAN move on ``board``."""
    if not move:
        return False
    try:
        parsed = board.parse_san(move)
    except ValueError:
        return False
    return bool(parsed)  # a null move ("--") is falsy


def greedy_move(model, text: str, device: str = "cpu", max_move_chars: int = MAX_MOVE_CHARS
                ) -> str:
    """The model's greedy continuation of ``text`` up to the end of one move."""
    import torch

    from moelens.data.chess.vocab import CHESS_VOCAB

    ids = torch.from_numpy(encode(text).astype(np.int64))[None].to(device)
    out = ""
    for _ in range(max_move_chars):
        logits = model(ids).logits[0, -1]
        nxt = int(logits.argmax())
        ch = CHESS_VOCAB[nxt]
        if ch in STOP:
            break
        out += ch
        ids = torch.cat([ids, ids.new_tensor([[nxt]])], dim=1)
    return out


def legal_move_rate(model, games: list[str], n: int = 200, seed: int = 0, max_chars: int = 256,
                    device: str = "cpu") -> dict[str, float]:
    """Share of greedy moves that are legal on ``n`` prompts from ``games`` (see module doc)."""
    import torch

    chosen = prompts(games, n, seed, max_chars)
    legal = 0
    with torch.no_grad():
        for p in chosen:
            legal += is_legal(p.board, greedy_move(model, p.text, device))
    return {"legal_move_rate": legal / max(len(chosen), 1), "n_prompts": len(chosen)}
