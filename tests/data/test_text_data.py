"""`moelens data text`: BPE trained locally or loaded, dtypes, EOS separation, split, errors."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from clitools import assert_user_error, run_cli

from moelens.config import from_dict
from moelens.data.commands import TextDataConfig
from moelens.data.text import build_text
from moelens.data.tokens import TokenData
from moelens.errors import DataError

WORDS = "the cat sat on a mat while dogs ran over green hills and rivers under bright skies".split()


def _corpus(tmp_path, n=120):
    rng = np.random.default_rng(0)
    docs = [" ".join(rng.choice(WORDS, 20)) + f" number {i}." for i in range(n)]
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "a.jsonl", "w") as fh:
        for d in docs[: n // 2]:
            fh.write(json.dumps({"body": d, "id": 1}) + "\n")
    pq.write_table(pa.table({"body": docs[n // 2:]}), src / "b.parquet")
    return src, docs


def _cfg(**kw) -> TextDataConfig:
    base = {"quiet": True, "text_field": "body", "val_fraction": 0.1}
    return from_dict(TextDataConfig, {**base, **kw})


def test_bpe_trained_round_trip_and_split(tmp_path):
    src, docs = _corpus(tmp_path)
    out = tmp_path / "out"
    build_text(_cfg(inputs=[str(src)], out=str(out), vocab_size=320))
    data = TokenData(out)
    m = data.meta
    assert m["kind"] == "text" and m["dtype"] == "uint16" and m["vocab_size"] == 320
    assert data.train.dtype == np.uint16 and data.train.max() < 320
    tok = data.tokenizer()
    eos = m["eos_id"]
    assert tok.convert_tokens_to_ids(tok.eos_token) == eos == tok.eos_token_id
    # documents are separated by EOS: decoding each piece gives back the corpus documents
    pieces = []
    for split in (data.train, data.val):
        ids = np.asarray(split)
        assert ids[-1] == eos
        cuts = np.flatnonzero(ids == eos)
        pieces += [tok.decode(ids[s + 1:e].tolist()) for s, e in zip([-1, *cuts[:-1]], cuts)]
    assert sorted(pieces) == sorted(docs)
    assert (eos == np.asarray(data.val)).sum() == 12
    text = "the green cat ran, café 😀"
    assert tok.decode(tok.encode(text)) == text
    assert build_text(_cfg(inputs=[str(src)], out=str(out), vocab_size=320)) is None  # up to date
    with pytest.raises(DataError, match="overwrite"):
        build_text(_cfg(inputs=[str(src)], out=str(out), vocab_size=300))
    # deterministic: same inputs and seed give the same bytes
    build_text(_cfg(inputs=[str(src)], out=str(tmp_path / "again"), vocab_size=320))
    for f in ("train.bin", "val.bin"):
        assert (out / f).read_bytes() == (tmp_path / "again" / f).read_bytes()


def test_existing_tokenizer_by_file_and_by_directory(tmp_path):
    src, docs = _corpus(tmp_path, 40)
    first = tmp_path / "first"
    build_text(_cfg(inputs=[str(src)], out=str(first), vocab_size=300))
    tok = TokenData(first).tokenizer()
    tok.save_pretrained(tmp_path / "hfdir")
    for spec in (first / "tokenizer.json", tmp_path / "hfdir"):
        out = tmp_path / f"re_{spec.name}"
        build_text(_cfg(inputs=[str(src)], out=str(out), tokenizer=str(spec)))
        assert (out / "train.bin").read_bytes() == (first / "train.bin").read_bytes()
        assert TokenData(out).meta["vocab_size"] == 300


def test_large_vocab_uses_uint32(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {f"w{i}": i for i in range(70000)}
    vocab.update({"<eos>": 70000, "[UNK]": 70001, "hello": 70002})
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.save(str(tmp_path / "big.json"))
    (tmp_path / "c.txt").write_text("hello w69999\nw1 hello\n")
    build_text(_cfg(inputs=[str(tmp_path / "c.txt")], out=str(tmp_path / "o"),
                    tokenizer=str(tmp_path / "big.json"), eos_token="<eos>", txt_documents="line",
                    val_fraction=0.5))
    data = TokenData(tmp_path / "o")
    assert data.meta["dtype"] == "uint32" and data.train.dtype == np.uint32
    assert sorted([data.train.tolist(), data.val.tolist()]) == [[1, 70002, 70000],
                                                                [70002, 69999, 70000]]


def test_user_errors_are_one_line(tmp_path):
    out = tmp_path / "o"
    assert_user_error(run_cli("data", "text", "--inputs", tmp_path / "missing.txt", "--out", out),
                      "does not exist")
    (tmp_path / "empty.txt").write_text("  \n\n")
    assert_user_error(run_cli("data", "text", "--inputs", tmp_path / "empty.txt", "--out", out),
                      "empty corpus")
    (tmp_path / "ok.txt").write_text("some text\nmore text\n")
    assert_user_error(run_cli("data", "text", "--inputs", tmp_path / "ok.txt", "--out", out,
                              "--tokenizer", tmp_path / "nope"), "tokenizer")
    assert not (out / "meta.json").exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{"other": "b"}\n')
    with pytest.raises(DataError, match="bad.jsonl:2"):
        build_text(_cfg(inputs=[str(bad)], out=str(out), text_field="text"))


def test_txt_document_modes_and_directory_expansion(tmp_path):
    from moelens.data.text import corpus_files, documents

    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "b.txt").write_text("one\ntwo\n\nthree\n")
    (tmp_path / "d" / "sub" / "a.txt").write_text("four")
    (tmp_path / "d" / "skip.md").write_text("ignored")
    files = corpus_files([tmp_path / "d"])
    assert [f.name for f in files] == ["b.txt", "a.txt"]
    assert list(documents(files, "text", "file")) == ["one\ntwo\n\nthree\n", "four"]
    assert list(documents(files, "text", "line")) == ["one", "two", "three", "four"]
    assert list(documents(files, "text", "paragraph")) == ["one\ntwo", "three", "four"]
    with pytest.raises(DataError, match="no inputs"):
        corpus_files([])
    with pytest.raises(DataError, match="not .txt"):
        corpus_files([tmp_path / "d" / "skip.md"])
