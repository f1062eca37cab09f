"""`moelens data chess` end to end: directory contents, determinism, resume, one-line errors."""

from __future__ import annotations

import json

import pytest
from clitools import assert_user_error, run_cli

from moelens.config import from_dict
from moelens.data.chess import CHESS_VOCAB, decode, replay
from moelens.data.chess.dataset import build_chess
from moelens.data.commands import ChessDataConfig
from moelens.data.tokens import TokenData
from moelens.errors import DataError

SMALL = {"player": "builtin", "book": "none", "max_plies": 30, "block_size": 128,
         "shard_games": 3, "val_fraction": 0.2, "quiet": True}


def _cfg(out, **kw) -> ChessDataConfig:
    return from_dict(ChessDataConfig, {**SMALL, "out": str(out), **kw})


def _files(out) -> dict[str, bytes]:
    return {n: (out / n).read_bytes() for n in ("train.bin", "val.bin", "games_val.txt")}


def test_cli_generates_a_valid_token_directory(tmp_path):
    out = tmp_path / "chess"
    args = [f"--{k}={v}" for k, v in {**SMALL, "max_plies": 26}.items() if k != "quiet"]
    # (26 plies: some games fit in a 128-character block, some do not)
    proc = run_cli("data", "chess", "--out", out, "--n_games", "8", "--workers", "2", *args,
                   "--quiet")
    assert proc.returncode == 0, proc.stderr
    data = TokenData(out)
    m = data.meta
    assert (m["kind"], m["dtype"], m["vocab_size"], m["block_size"]) == ("chess", "uint8", 32, 128)
    assert m["source"]["n_train_games"] + m["source"]["n_val_games"] == 8
    for split in (data.train, data.val):
        assert len(split) > 0 and len(split) % 128 == 0 and split.max() < 32
        blocks = split.reshape(-1, 128)
        assert (blocks[:, 0] == CHESS_VOCAB.index(";")).all()
    assert set(decode(data.train)) <= set(CHESS_VOCAB)
    games = data.games_val()
    assert len(games) == m["source"]["n_val_games"] and all(replay(g) for g in games)
    assert data.tokenizer().decode(data.val[:128].tolist()).startswith(games[0][:128])
    # the output says how many games lose their ending to the block size
    played = [g for p in sorted((out / ".shards").glob("gen-*.txt"))
              for g in p.read_text().splitlines() if g]
    cut = sum(len(g) > 128 for g in played)
    assert len(played) == 8 and 0 < cut < 8
    assert f"truncated: {cut} of 8 games ({cut / 8:.1%}) are longer than one 128-character" \
        in proc.stdout, proc.stdout
    assert m["source"]["cut_games"] == cut and m["source"]["cut_fraction"] == cut / 8
    again = run_cli("data", "chess", "--out", out, "--n_games", "8", "--workers", "1", *args,
                    "--quiet")
    assert again.returncode == 0 and "up to date" in again.stdout


def test_same_seed_same_bytes_and_resume_after_interruption(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    build_chess(_cfg(a, n_games=6, workers=1))
    build_chess(_cfg(b, n_games=6, workers=2))
    assert _files(a) == _files(b)
    # an interrupted run: no meta.json and a shard missing -> rerun completes identically
    (b / "meta.json").unlink()
    (b / ".shards" / "gen-000000003-000000006.txt").unlink()
    with pytest.raises(DataError, match="meta.json"):
        TokenData(b)
    build_chess(_cfg(b, n_games=6, workers=1))
    assert _files(a) == _files(b)
    meta_a, meta_b = (json.loads((d / "meta.json").read_text()) for d in (a, b))
    assert meta_a["n_train"] == meta_b["n_train"]
    # more games later: the finished shards are reused, only the new range is played
    first = (b / ".shards" / "gen-000000000-000000003.txt").stat().st_mtime_ns
    build_chess(_cfg(b, n_games=8, workers=1, overwrite=True))
    assert (b / ".shards" / "gen-000000000-000000003.txt").stat().st_mtime_ns == first
    c = tmp_path / "c"
    build_chess(_cfg(c, n_games=8, workers=1))
    assert _files(b) == _files(c)
    with pytest.raises(DataError, match="overwrite"):
        build_chess(_cfg(a, n_games=6, seed=1))
    build_chess(_cfg(a, n_games=6, seed=1, overwrite=True))
    assert _files(a) != _files(b)


def test_shards_from_an_older_generator_are_replayed(tmp_path):
    """Games are a function of the settings *and* of the player's code: shards whose spec.json
    names another generator version are discarded, not reused."""
    from moelens.data.chess.generate import GENERATOR_VERSION

    out = tmp_path / "d"
    build_chess(_cfg(out, n_games=4, workers=1))
    shard = out / ".shards" / "gen-000000000-000000003.txt"
    spec_path = out / ".shards" / "spec.json"
    spec = json.loads(spec_path.read_text())
    assert spec["generator_version"] == GENERATOR_VERSION
    shard.write_text(";1.e4\n;1.d4\n;1.c4\n")  # what older code might have played
    build_chess(_cfg(out, n_games=4, workers=1, overwrite=True))
    assert ";1.e4\n" in shard.read_text()  # same version: the finished shard is reused
    spec_path.write_text(json.dumps({**spec, "generator_version": GENERATOR_VERSION - 1}))
    build_chess(_cfg(out, n_games=4, workers=1, overwrite=True))
    assert ";1.e4\n" not in shard.read_text()


def test_import_only_with_a_rejected_game(tmp_path):
    pgn = tmp_path / "g.pgn"
    pgn.write_text("1. e4 e5 2. Nf3 *\n\n1. d4 d5 2. Kd2 Kd7 3. Kc3 *\n\n1. e4 e5 2. Ke3 *\n")
    meta = build_chess(_cfg(tmp_path / "out", n_games=0, pgn=[str(pgn)], val_fraction=0.4))
    assert meta["source"]["imports"][0]["accepted"] == 2
    assert meta["source"]["imports"][0]["rejected_illegal"] == 1
    data = TokenData(tmp_path / "out")
    train_game = ";" + decode(data.train[:128]).split(";")[1]
    assert sorted(data.games_val() + [train_game]) == [";1.d4 d5 2.Kd2 Kd7 3.Kc3", ";1.e4 e5 2.Nf3"]
    bad = tmp_path / "bad.pgn"
    bad.write_text("1. e4 e5 2. Ke3 *\n")
    with pytest.raises(DataError, match="zero valid games"):
        build_chess(_cfg(tmp_path / "out2", n_games=0, pgn=[str(bad)]))
    assert not (tmp_path / "out2" / "meta.json").exists()


def test_user_errors_are_one_line(tmp_path):
    out = tmp_path / "o"
    assert_user_error(run_cli("data", "chess", "--out", out, "--n_games", "0"), "zero games")
    assert_user_error(run_cli("data", "chess", "--out", out, "--pgn", tmp_path / "missing.pgn"),
                      "does not exist")
    assert_user_error(run_cli("data", "chess", "--out", out, "--player", "stockfish",
                              "--stockfish_path", tmp_path / "no-stockfish", "--n_games", "2"),
                      "stockfish")
    assert_user_error(run_cli("data", "chess", "--out", out, "--val_fraction", "1.5"),
                      "val_fraction")
    assert_user_error(run_cli("data", "chess", "--out", out, "--resign_cp", "-1"), "resign_cp")
    assert not (out / "meta.json").exists()


def test_token_data_rejects_missing_and_damaged_directories(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        TokenData(tmp_path / "nope")
    out = tmp_path / "d"
    build_chess(_cfg(out, n_games=4, workers=1))
    with open(out / "train.bin", "ab") as fh:
        fh.write(b"\x00")
    with pytest.raises(DataError, match="bytes"):
        TokenData(out)
