"""Chess as data: the 32-character vocabulary and game strings (:mod:`.vocab`), players
(:mod:`.players`: Stockfish and the built-in player), game generation (:mod:`.generate`), PGN and
transcript import (:mod:`.pgn`), training blocks (:mod:`.blocks`) and the ``moelens data chess``
pipeline (:mod:`.dataset`).

The vocabulary names are re-exported here because nearly every user of chess data needs them.
"""

from moelens.data.chess.vocab import (
    CHESS_VOCAB,
    CHESS_VOCAB_SIZE,
    GAME_START,
    PAD_TOKEN,
    ChessTokenizer,
    IllegalGame,
    chess_tokenizer,
    decode,
    encode,
    game_string,
    outside_vocab,
    replay,
    trim_partial,
)

__all__ = ["CHESS_VOCAB", "CHESS_VOCAB_SIZE", "GAME_START", "PAD_TOKEN", "ChessTokenizer",
           "IllegalGame", "chess_tokenizer", "decode", "encode", "game_string", "outside_vocab",
           "replay", "trim_partial"]
