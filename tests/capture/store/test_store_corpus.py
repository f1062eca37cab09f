"""Corpus input: file formats, chess games, windows that never cross documents, shard plans."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from moelens import cli
from moelens.capture import corpus
from moelens.capture.windows import plan_shards, tokenize
from moelens.errors import DataError

PGN = """[Event "a"]
[Result "1-0"]

1. e4 e5 2. Nf3 {a comment} Nc6 3. Bb5 (3. Bc4 Bc5) a6 1-0

[Event "b"]
[Result "0-1"]

1. f3 e5 2. g4 Qh4# 0-1
"""


def test_pgn_and_transcripts(tmp_path):
    assert corpus.pgn_transcripts(PGN) == [";1.e4 e5 2.Nf3 Nc6 3.Bb5 a6", ";1.f3 e5 2.g4 Qh4#"]
    (tmp_path / "g.pgn").write_text(PGN)
    (tmp_path / "games.txt").write_text(";1.e4 e5 2.Nf3\n\n;1.d4 d5\n")
    c = corpus.load_files([tmp_path / "g.pgn", tmp_path / "games.txt"])
    assert c.kind == "chess" and list(c.documents())[2:] == [";1.e4 e5 2.Nf3", ";1.d4 d5"]
    (tmp_path / "prose.txt").write_text("some prose\nover lines\n")
    with pytest.raises(DataError, match="mixes chess games and text"):
        corpus.load_files([tmp_path / "g.pgn", tmp_path / "prose.txt"])


def test_text_jsonl_parquet(tmp_path):
    (tmp_path / "a.txt").write_text("first line\nsecond line\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"body": "x y"}) + "\n\n" + json.dumps({"body": "z"}) + "\n")
    pq.write_table(pa.table({"body": ["p1", "p2"], "n": [1, 2]}), tmp_path / "c.parquet")
    c = corpus.load_files([tmp_path / "a.txt", tmp_path / "b.jsonl", tmp_path / "c.parquet"], "body")
    assert list(c.documents()) == ["first line\nsecond line\n", "x y", "z", "p1", "p2"]
    assert c.kind == "text" and [f["bytes"] for f in c.description["files"]] == [23, 31, (tmp_path / "c.parquet").stat().st_size]
    with pytest.raises(DataError, match="no column 'text'"):
        corpus.load_files([tmp_path / "c.parquet"])


def test_windows_and_shards(model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    docs = ["abc de fg " * 5, "x", "the quick brown fox " * 3]
    windows = list(tokenize(docs, tok, ctx=16, max_tokens=None))
    assert sum(w.ids.size for w in windows) == sum(len(d) for d in docs)  # one token per char
    assert all(w.ids.size <= 16 for w in windows)
    for w in windows:  # a window never crosses a document and offsets point into it
        text = docs[w.doc]
        assert tok.convert_ids_to_tokens(w.ids.tolist()) == [text[a:b] for a, b in w.offsets]
    cut = list(tokenize(docs, tok, ctx=16, max_tokens=53))
    assert sum(w.ids.size for w in cut) == 53 and cut[-1].doc == 2 and cut[-1].ids.size == 2
    shards = list(plan_shards(windows, 40))
    assert [s.start for s in shards[1:]] == [s.stop for s in shards[:-1]]
    assert all(s.stop - s.start >= 40 for s in shards[:-1]) and shards[-1].stop == 111
    again = list(plan_shards(tokenize(iter(docs), tok, ctx=16, max_tokens=None), 40))
    assert [(s.start, s.stop) for s in again] == [(s.start, s.stop) for s in shards]


def test_dataset_needs_datasets_or_network(capsys, model_dir, tmp_path):
    code = cli.main(["capture", "--model", str(model_dir), "--dataset", "nobody/nothing",
                     "--out", str(tmp_path / "o"), "--quiet"])
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert code == 2 and len(err) == 1 and "dataset" in err[0], err
    assert not (tmp_path / "o").exists()


def test_auto_shard_tokens_bounds_memory():
    from moelens.capture.job import auto_shard_tokens
    from moelens.store.writer import LayerPlan

    olmoe = [LayerPlan(l, "moe", ["expert", "resid"], {"expert": 1024, "resid": 2048}, 64, 8)
             for l in range(16)]
    n = auto_shard_tokens(olmoe, "fp16")
    per_token_values = 16 * (8 * 1024 * 2 + 2048 * 4)
    assert n & (n - 1) == 0 and n * per_token_values < (1 << 29) < 4 * n * per_token_values
    assert auto_shard_tokens([LayerPlan(0, "dense", ["resid"], {"resid": 64})], "fp32") == 65536


def test_hub_dataset_path_with_a_stand_in_datasets_module(monkeypatch):
    import sys
    from types import SimpleNamespace

    calls = []

    def load_dataset(name, split, streaming):
        calls.append((name, split, streaming))
        if name == "offline/x":
            raise ConnectionError("no network\nmore")
        return iter([{"text": "abcd" * 10, "id": i} for i in range(100)])

    monkeypatch.setitem(sys.modules, "datasets", SimpleNamespace(load_dataset=load_dataset))
    c = corpus.load_hub_dataset("some/set", "train", "text", max_chars=100)
    assert len(list(c.documents())) == 3 and calls[-1] == ("some/set", "train", True)
    assert len(list(corpus.load_hub_dataset("some/set", "val", "text").documents())) == 100
    with pytest.raises(DataError, match="no field 'body'"):
        list(corpus.load_hub_dataset("some/set", "train", "body").documents())
    with pytest.raises(DataError, match="cannot load dataset 'offline/x'.*ConnectionError: no network\\);"):
        corpus.load_hub_dataset("offline/x", "train", "text")
