"""Build a chess token data directory: import, generate, split, pack, and write meta.json last.

Work in progress lives in ``<out>/.shards/``: one validated shard per imported file and one per
``shard_games`` generated games, each written atomically, beside ``spec.json`` describing what
produced them. A rerun with the same settings reuses finished shards (resume); with different
settings the shards are discarded and rebuilt (restart). Generation shards are named by their
game range, so asking for more games later (``--overwrite --n_games N``) plays only the new ones.
``meta.json`` is written last, so a directory without it is never mistaken for a finished one.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import chess
from tqdm import tqdm

from moelens.config import to_dict
from moelens.data.chess.blocks import write_splits
from moelens.data.chess.generate import GENERATOR_VERSION, GameSpec, check_player, default_workers, generate
from moelens.data.chess.pgn import pgn_games, transcript_games
from moelens.data.chess.players import find_book, find_stockfish
from moelens.data.chess.vocab import CHESS_VOCAB_SIZE
from moelens.data.tokens import prepare_out, write_meta
from moelens.errors import DataError
from moelens.rundir import atomic_path, atomic_write_json

OUTPUTS = ("meta.json", "train.bin", "val.bin", "games_val.txt")
# settings that do not change the data (left out when deciding whether a directory is up to date)
NEUTRAL = ("workers", "quiet", "overwrite", "out")


def _file_id(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _identity(cfg) -> dict:
    """What decides the data: the settings that matter plus the imported files' size and mtime."""
    ident = {k: v for k, v in to_dict(cfg).items() if k not in NEUTRAL}
    ident["input_files"] = [_file_id(Path(p)) for p in [*cfg.pgn, *cfg.transcripts]]
    return ident


def resolve_spec(cfg) -> GameSpec:
    """The generation settings with 'auto' resolved (player, Stockfish binary, book)."""
    stockfish = find_stockfish(cfg.stockfish_path)
    player = cfg.player
    if player == "auto":
        player = "stockfish" if stockfish else "builtin"
    if player == "stockfish" and stockfish is None:
        raise DataError(f"stockfish binary not found ({cfg.stockfish_path}); install it (apt-get "
                        "install stockfish), give --stockfish_path, or use --player builtin")
    return GameSpec(seed=cfg.seed, player=player, stockfish=stockfish if player == "stockfish"
                    else None, multipv=cfg.multipv, depth_min=cfg.depth_min,
                    depth_max=cfg.depth_max, temperature_min=cfg.temperature_min,
                    temperature_max=cfg.temperature_max, book=find_book(cfg.book),
                    book_plies=cfg.book_plies, random_plies=cfg.random_plies,
                    max_plies=cfg.max_plies, resign_cp=cfg.resign_cp,
                    resign_plies=cfg.resign_plies)


def _import(cfg, shard_dir: Path) -> tuple[list[Path], list[dict]]:
    shards, report = [], []
    files = [("pgn", p) for p in cfg.pgn] + [("transcripts", p) for p in cfg.transcripts]
    for i, (kind, path) in enumerate(files):
        shard, stats_path = shard_dir / f"import-{i:04d}.txt", shard_dir / f"import-{i:04d}.json"
        if not stats_path.exists():
            stats: Counter = Counter()
            it = pgn_games(path, stats) if kind == "pgn" else \
                transcript_games(path, cfg.transcript_column, stats)
            bar = tqdm(it, desc=f"import {path.name}", unit="game", disable=cfg.quiet,
                       file=sys.stderr, delay=1.0)
            with atomic_path(shard) as tmp, open(tmp, "w", encoding="ascii") as fh:
                for game in bar:  # streamed: a PGN dump need not fit in memory
                    fh.write(game + "\n")
            atomic_write_json(stats_path, {"file": str(path), "kind": kind, **stats})
        info = json.loads(stats_path.read_text())
        report.append(info)
        shards.append(shard)
    return shards, report


def build_chess(cfg) -> dict | None:
    """Run ``moelens data chess``; returns the written meta (None when already up to date)."""
    for p in [*cfg.pgn, *cfg.transcripts]:
        if not Path(p).is_file():
            raise DataError(f"game file {p} does not exist; check the path")
    if cfg.n_games == 0 and not cfg.pgn and not cfg.transcripts:
        raise DataError("zero games requested: set --n_games > 0 or import games with --pgn / "
                        "--transcripts")
    # shards stay: a game is a pure function of the generation spec and its index, and shards
    # from another spec are discarded by build_chess
    if not prepare_out(cfg.out, _identity(cfg), cfg.overwrite, OUTPUTS):
        print(f"{cfg.out} is already up to date (pass --overwrite to rebuild)")
        return None
    spec = resolve_spec(cfg) if cfg.n_games else None
    version = check_player(spec) if spec else None
    shard_dir = cfg.out / ".shards"
    # what the shards depend on (not n_games, the split or the block size: those reuse them)
    ident = {"spec": spec and vars(spec), "engine": version, "python-chess": chess.__version__,
             "generator_version": GENERATOR_VERSION,
             "shard_games": cfg.shard_games,
             "transcript_column": cfg.transcript_column,
             "input_files": _identity(cfg)["input_files"]}
    spec_path = shard_dir / "spec.json"
    if spec_path.exists() and json.loads(spec_path.read_text()) != json.loads(json.dumps(ident)):
        shutil.rmtree(shard_dir)  # other settings: restart rather than mix games
    shard_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(spec_path, ident)

    shards, imports = _import(cfg, shard_dir)
    gen_seconds = 0.0
    if spec is not None:
        t0 = time.perf_counter()
        with tqdm(total=cfg.n_games, desc=f"games ({spec.player})", unit="game",
                  disable=cfg.quiet, file=sys.stderr, delay=1.0) as bar:
            shards += generate(spec, cfg.n_games, shard_dir, cfg.shard_games,
                               cfg.workers or default_workers(), bar)
        gen_seconds = time.perf_counter() - t0
    if sum(s.stat().st_size for s in shards) == 0:
        rejected = sum(v for i in imports for k, v in i.items() if k.startswith("rejected"))
        raise DataError(f"zero valid games: all {rejected} imported games were rejected; check "
                        "the files or generate games with --n_games")
    with tqdm(desc="blocks", unit="game", disable=cfg.quiet, file=sys.stderr,
              delay=1.0) as bar:
        split = write_splits(cfg.out, shards, cfg.seed, cfg.val_fraction, cfg.block_size, bar)
    source = {"generator": spec and {**vars(spec), "engine": version}, "imports": imports,
              "n_generated": cfg.n_games, **split,
              "cut_fraction": round(split["cut_games"] / split["n_games"], 6),
              "generate_seconds": round(gen_seconds, 3),
              "config": _identity(cfg)}
    meta = write_meta(cfg.out, {
        "kind": "chess", "dtype": "uint8", "vocab_size": CHESS_VOCAB_SIZE,
        "block_size": cfg.block_size, "tokenizer": "chess",
        "n_train": split["n_train_blocks"] * cfg.block_size,
        "n_val": split["n_val_blocks"] * cfg.block_size, "source": source, "seed": cfg.seed})
    rejected = sum(v for i in imports for k, v in i.items() if k.startswith("rejected"))
    print(f"wrote {cfg.out}: {split['n_train_games']} train / {split['n_val_games']} val games, "
          f"{meta['n_train']} + {meta['n_val']} characters"
          + (f", {rejected} imported games rejected" if cfg.pgn or cfg.transcripts else ""))
    print(f"truncated: {split['cut_games']} of {split['n_games']} games "
          f"({source['cut_fraction']:.1%}) are longer than one {cfg.block_size}-character block "
          "and lose their ending")
    return meta
