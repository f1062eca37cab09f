"""Importing PGN and transcript files: good games kept, bad ones rejected and counted."""

from __future__ import annotations

from collections import Counter

from moelens.data.chess import replay
from moelens.data.chess.pgn import pgn_games, transcript_games

PGN = """[Event "good"]
[Result "1-0"]

1. e4 e5 2. Nf3 Nc6 3. Bb5 {a comment} a6 (3... Nf6 4. O-O) 4. Ba4 1-0

[Event "illegal"]

1. e4 e5 2. Ke3 Nc6 *

[Event "from a position"]
[SetUp "1"]
[FEN "4k3/8/8/8/8/8/8/4K2R w K - 0 1"]

1. O-O Kd7 *

[Event "mate"]

1. f3 e5 2. g4 Qh4# 0-1
"""


def test_pgn_import_counts_rejections(tmp_path):
    path = tmp_path / "games.pgn"
    path.write_text(PGN)
    stats: Counter = Counter()
    games = list(pgn_games(path, stats))
    assert games == [";1.e4 e5 2.Nf3 Nc6 3.Bb5 a6 4.Ba4", ";1.f3 e5 2.g4 Qh4#"]
    assert stats == Counter(accepted=2, rejected_illegal=1, rejected_not_standard_start=1)


def test_transcripts_split_blocks_trim_cut_moves_and_reject_bad_games(tmp_path):
    path = tmp_path / "blocks.txt"
    path.write_text(";1.e4 e5 2.Nf3;1.d4 d5 2.c4 e6 3.Nc\n"   # two games, the second cut short
                    ";1.e4 e5 2.Ke3 Nc6\n"                      # illegal
                    ";1.e4 e5 2.Nf3 Nc6 1/2\n"                  # outside the vocabulary
                    "\n;1.c4 e5\n")
    stats: Counter = Counter()
    games = list(transcript_games(path, "transcript", stats))
    assert games == [";1.e4 e5 2.Nf3", ";1.d4 d5 2.c4 e6", ";1.c4 e5"]
    assert stats == Counter(accepted=3, truncated=1, rejected_illegal=1, rejected_vocab=1)
    assert all(replay(g) for g in games)


def test_transcripts_from_csv_column(tmp_path):
    path = tmp_path / "lichess.csv"
    path.write_text("WhiteElo,transcript\n1500,\";1.e4 e5 2.Nf3\"\n1600,;1.d4 Nf6\n")
    stats: Counter = Counter()
    assert list(transcript_games(path, "transcript", stats)) == [";1.e4 e5 2.Nf3", ";1.d4 Nf6"]
