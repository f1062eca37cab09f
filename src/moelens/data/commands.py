"""``moelens data chess`` and ``moelens data text``: configs and the thin command functions.

Both write a token data directory (see :mod:`moelens.data.tokens`); the work is done by
:mod:`moelens.data.chess.dataset` and :mod:`moelens.data.text`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from moelens.errors import ConfigError


@dataclass
class ChessDataConfig:
    """Generate chess games offline and/or import the user's games into 1024-character blocks."""

    out: Path = Path("data/chess")
    """output token data directory (meta.json, train.bin, val.bin, games_val.txt)"""
    n_games: int = 10000
    """number of games to generate (0: only import the files given by --pgn / --transcripts)"""
    seed: int = 0
    """seed of every random choice (game i uses the generator seeded with [seed, i])"""
    workers: int = 0
    """worker processes for generation (0: one per available CPU); does not change the output"""
    player: Literal["auto", "stockfish", "builtin"] = "auto"
    """who plays: Stockfish over UCI, the built-in material+mobility heuristic, or auto
    (Stockfish when its binary is found, else built-in)"""
    stockfish_path: str = "auto"
    """Stockfish binary (auto: 'stockfish' on PATH, then /usr/games/stockfish)"""
    depth_min: int = 1
    """smallest Stockfish search depth; each game draws its depth in [depth_min, depth_max]"""
    depth_max: int = 5
    """largest Stockfish search depth"""
    multipv: int = 3
    """Stockfish candidate lines per move; the move is sampled among them by score"""
    temperature_min: float = 10.0
    """smallest softmax temperature in centipawns (lower plays stronger); drawn per game"""
    temperature_max: float = 60.0
    """largest softmax temperature in centipawns"""
    book: str = "auto"
    """polyglot opening book (auto: Debian gnuchess-book's book.bin if installed; none: no book)"""
    book_plies: int = 16
    """with a book, each game plays up to a random 1..book_plies weighted book moves"""
    random_plies: int = 4
    """without a book, each game opens with a random 0..random_plies uniformly random moves"""
    max_plies: int = 300
    """move cap: a game stops after this many half-moves if not ended by mate, draw or
    resignation"""
    resign_cp: int = 600
    """adjudication: a side down at least this much material (centipawns) for resign_plies
    plies in a row resigns and the game string stops there (0: play on to mate, draw or
    max_plies)"""
    resign_plies: int = 12
    """plies in a row a side must stay down resign_cp before it resigns"""
    pgn: list[Path] = field(default_factory=list)
    """PGN files to import (illegal, variant or non-standard-start games are rejected, counted)"""
    transcripts: list[Path] = field(default_factory=list)
    """transcript files to import: one ';1.e4 e5 …' string per line, or a .csv column"""
    transcript_column: str = "transcript"
    """column holding the transcripts in .csv transcript files"""
    block_size: int = 1024
    """characters per training block (each starts with ';')"""
    val_fraction: float = 0.05
    """fraction of games held out for validation (at least one)"""
    shard_games: int = 256
    """games per generation shard (the unit of resume after an interruption)"""
    overwrite: bool = False
    """replace an existing finished data directory"""
    quiet: bool = False
    """no progress bar"""

    def __post_init__(self) -> None:
        if self.n_games < 0:
            raise ConfigError("n_games must be >= 0")
        if not 1 <= self.depth_min <= self.depth_max:
            raise ConfigError("need 1 <= depth_min <= depth_max")
        if self.multipv < 1:
            raise ConfigError("multipv must be >= 1")
        if not 0 < self.temperature_min <= self.temperature_max:
            raise ConfigError("need 0 < temperature_min <= temperature_max")
        if self.book_plies < 0 or self.random_plies < 0 or self.max_plies < 1:
            raise ConfigError("book_plies and random_plies must be >= 0 and max_plies >= 1")
        if self.resign_cp < 0 or self.resign_plies < 1:
            raise ConfigError("resign_cp must be >= 0 and resign_plies >= 1")
        if self.block_size < 16:
            raise ConfigError("block_size must be at least 16 characters")
        if not 0 < self.val_fraction < 1:
            raise ConfigError("val_fraction must lie strictly between 0 and 1")
        if self.shard_games < 1 or self.workers < 0:
            raise ConfigError("shard_games must be >= 1 and workers >= 0")


@dataclass
class TextDataConfig:
    """Tokenize local text files (txt, jsonl, parquet) into a token data directory."""

    inputs: list[Path] = field(default_factory=list)
    """text files or directories (searched for *.txt, *.jsonl, *.parquet), in the given order"""
    out: Path = Path("data/text")
    """output token data directory (meta.json, train.bin, val.bin, tokenizer.json)"""
    text_field: str = "text"
    """field of jsonl records / column of parquet files holding the text"""
    txt_documents: Literal["file", "line", "paragraph"] = "file"
    """how a .txt file splits into documents: the whole file, each line, or blank-line paragraphs"""
    tokenizer: str = "train"
    """'train' to train a byte-level BPE on the training documents, or a path to a tokenizer.json
    file or a local Hugging Face tokenizer directory"""
    vocab_size: int = 8192
    """vocabulary size of a trained BPE tokenizer (including the EOS token)"""
    eos_token: str = "<|endoftext|>"
    """document separator token (a loaded tokenizer's own eos_token wins when it has one)"""
    val_fraction: float = 0.01
    """fraction of documents held out for validation (at least one)"""
    seed: int = 0
    """seed of the validation split"""
    batch_docs: int = 1000
    """documents tokenized per batch"""
    overwrite: bool = False
    """replace an existing finished data directory"""
    quiet: bool = False
    """no progress bar"""

    def __post_init__(self) -> None:
        if self.vocab_size < 258:
            raise ConfigError("vocab_size must be at least 258 (256 bytes, EOS and one merge)")
        if not 0 < self.val_fraction < 1:
            raise ConfigError("val_fraction must lie strictly between 0 and 1")
        if self.batch_docs < 1:
            raise ConfigError("batch_docs must be >= 1")


def run_chess(cfg: ChessDataConfig) -> int:
    from moelens.data.chess.dataset import build_chess

    build_chess(cfg)
    return 0


def run_text(cfg: TextDataConfig) -> int:
    from moelens.data.text import build_text

    build_text(cfg)
    return 0
