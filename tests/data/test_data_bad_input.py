"""Bad input to ``moelens data chess|text|corpora`` as a user types it: one line, exit 2, and no
output directory left behind that looks complete (``meta.json`` / ``manifest.json`` written last).
"""

from __future__ import annotations

from clitools import assert_user_error, run_cli


def test_data_text_changed_settings_need_overwrite_and_bad_records_are_named(tmp_path):
    src = tmp_path / "c.txt"
    src.write_text("\n".join(f"line {i} of the corpus, with words" for i in range(200)))
    out = tmp_path / "o"
    ok = run_cli("data", "text", "--inputs", src, "--out", out, "--vocab_size", "300",
                 "--txt_documents", "line", "--quiet")
    assert ok.returncode == 0, ok.stderr
    assert_user_error(run_cli("data", "text", "--inputs", src, "--out", out, "--vocab_size", "280",
                              "--txt_documents", "line"),
                      "overwrite")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{"other": "b"}\n')
    out2 = tmp_path / "o2"
    assert_user_error(run_cli("data", "text", "--inputs", bad, "--out", out2), "bad.jsonl:2")
    assert not (out2 / "meta.json").exists()
    assert_user_error(run_cli("data", "text", "--inputs", tmp_path / "notes.md", "--out", out2),
                      "notes.md")


def test_data_chess_changed_seed_needs_overwrite_and_no_valid_games(tmp_path):
    out = tmp_path / "o"
    ok = run_cli("data", "chess", "--out", out, "--n_games", "4", "--player", "builtin",
                 "--workers", "1", "--seed", "0", "--quiet")
    assert ok.returncode == 0, ok.stderr
    assert_user_error(run_cli("data", "chess", "--out", out, "--n_games", "4", "--player",
                              "builtin", "--workers", "1", "--seed", "1"), "overwrite")
    bad = tmp_path / "bad.pgn"
    bad.write_text("1. e4 e5 2. Ke3 *\n")
    out2 = tmp_path / "o2"
    assert_user_error(run_cli("data", "chess", "--out", out2, "--n_games", "0", "--pgn", bad),
                      "zero valid games")
    assert not (out2 / "meta.json").exists()


def test_data_corpora_bad_values(tmp_path):
    out = tmp_path / "c"
    assert_user_error(run_cli("data", "corpora", "--out", out, "--max_docs_per_source", "0"),
                      "max_docs_per_source")
    assert_user_error(run_cli("data", "corpora", "--out", out, "--sources", "wikipedia"),
                      "wikipedia")
    assert not (out / "manifest.json").exists()
