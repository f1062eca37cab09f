"""The corpus is streamed: read no further than needed, memory flat in the corpus size, the same
documents (and shuffled order) as reading it whole, and a resume that checks what it keeps."""

from __future__ import annotations

import hashlib
import json
import tracemalloc

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from moelens import cli
from moelens.capture import corpus
from moelens.capture.capture import token_table
from moelens.capture.store_job import DocumentLog
from moelens.capture.windows import plan_shards, tokenize
from moelens.store import ActivationStore


def _doc_hash(docs):
    h = hashlib.sha256()
    for d in docs:
        data = d.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _args(capture_args, *files):
    i = capture_args.index("--corpus")
    return capture_args[:i] + ["--corpus", *map(str, files)] + capture_args[i + 3:]


def test_capture_of_n_tokens_never_reads_the_tail_of_the_corpus(tmp_path, capture_args, capsys):
    from store_helpers import TEXT

    big = tmp_path / "big.jsonl"
    with open(big, "w") as fh:
        for i in range(20000):  # about 2 MB of documents, then a line that cannot be parsed
            fh.write(json.dumps({"text": TEXT[i % 50:i % 50 + 60]}) + "\n")
        fh.write("this line is not JSON\n")
    out = tmp_path / "s"
    assert cli.main(["capture", *_args(capture_args, big), "--tokens", "200", "--out", str(out)]) == 0
    store = ActivationStore.open(out)
    docs = store.documents()
    assert store.n_tokens == 200 and len(docs) == 4 == store.doc_ids().max() + 1
    assert docs == [TEXT[i:i + 60] for i in range(4)]
    assert store.manifest["corpus"]["n_documents"] == 4
    assert store.manifest["corpus"]["sha256"] == _doc_hash(docs)
    assert store.manifest["corpus"]["description"]["files"] == [{"path": str(big), "bytes": big.stat().st_size}]

    small = tmp_path / "small.jsonl"  # the bad line is met mid-capture: still one line, exit 2
    small.write_text("".join(json.dumps({"text": TEXT}) + "\n" for _ in range(2)) + "{oops\n")
    capsys.readouterr()
    assert cli.main(["capture", *_args(capture_args, small), "--out", str(tmp_path / "t")]) == 2
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(err) == 1 and f"{small}:3 is not valid JSON" in err[0], err
    assert not (tmp_path / "t" / "manifest.json").exists()


def _peak_streaming(path, tok, root) -> int:
    """Peak traced bytes of streaming ``path`` through windows and shards as capture does."""
    c = corpus.load_files([path])
    log = DocumentLog()
    tracemalloc.start()
    try:
        log.open(root)
        n = 0
        for shard in plan_shards(tokenize(c.documents(), tok, 40, None, log.add), 256):
            n += token_table(shard.windows).shape[0]
        log.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == sum(len(json.loads(l)["text"]) for l in path.read_text().splitlines())
    return peak


def test_memory_does_not_grow_with_the_corpus(tmp_path, model_dir):
    from store_helpers import TEXT
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    peaks = []
    for n_docs in (300, 1200):
        path = tmp_path / f"c{n_docs}.jsonl"
        path.write_text("".join(json.dumps({"text": TEXT[i % 40:]}) + "\n" for i in range(n_docs)))
        root = tmp_path / f"r{n_docs}"
        root.mkdir()
        peaks.append(_peak_streaming(path, tok, root))
        docs = json.loads((root / ".documents.json.partial.tmp").read_text())
        assert docs == [TEXT[i % 40:] for i in range(n_docs)]
    # four times the corpus (about 160k vs 40k tokens, 5.6 MB vs 1.4 MB of windows if held):
    # the peak is that of one document and one shard either way
    assert peaks[1] < 1.3 * peaks[0], peaks


PGN = """[Event "a"]\r\n\r\n1. e4 e5 2. Nf3 {a comment} Nc6 3. Bb5 (3. Bc4 Bc5) a6 1-0\r\n\r\n
[Event "b"]\n\n1. f3 e5 2. g4 Qh4# 0-1\n\n[Event "c"]\n\n1. d4 d5 *\n"""


def test_documents_and_shuffled_order_equal_reading_whole_files(tmp_path):
    seq = []
    (tmp_path / "a.txt").write_text("one whole\ndocument\r\n")
    seq.append((tmp_path / "a.txt").read_text())
    # a JSON string may hold U+2028, U+2029 and U+0085 unescaped: not line ends of JSON Lines
    lines = [json.dumps({"text": f"record {i} " + "é\u2029\x85\u2028" * i}, ensure_ascii=False)
             for i in range(7)]
    (tmp_path / "b.jsonl").write_bytes(("\r\n".join(lines[:3]) + "\n\n" + "\r".join(lines[3:]) + "\n").encode())
    seq += [json.loads(l)["text"] for l in lines]
    pq.write_table(pa.table({"text": [f"row {i}" for i in range(5)]}), tmp_path / "c.parquet",
                   row_group_size=2)
    seq += [f"row {i}" for i in range(5)]
    text = corpus.load_files([tmp_path / "a.txt", tmp_path / "b.jsonl", tmp_path / "c.parquet"])
    chess_files = [tmp_path / "g.pgn", tmp_path / "games.txt"]
    chess_files[0].write_bytes(PGN.encode())
    chess_files[1].write_bytes(b";1.e4 e5\r\n\n  ;1.d4 d5 2.c4\r;1.c4 \xff\n;1.Nf3")
    chess_seq = corpus.pgn_transcripts(chess_files[0].read_text())
    chess_seq += [l.strip() for l in chess_files[1].read_text(errors="replace").splitlines() if l.strip()]
    assert len(chess_seq) == 7 and chess_seq[3] == ";1.e4 e5"
    chess = corpus.load_files(chess_files)
    for c, want in ((text, seq), (chess, chess_seq)):
        assert list(c.documents()) == want
        c.shuffle_seed = 5
        order = np.random.default_rng(5).permutation(len(want))
        assert list(c.documents()) == [want[i] for i in order]


def test_shuffled_capture_records_the_shuffled_documents(tmp_path, capture_args, corpus_files):
    out = tmp_path / "s"
    assert cli.main(["capture", *capture_args, "--shuffle", "--seed", "3", "--tokens", "150",
                     "--out", str(out)]) == 0
    whole = list(corpus.load_files(corpus_files).documents())
    shuffled = [whole[i] for i in np.random.default_rng(3).permutation(len(whole))]
    store = ActivationStore.open(out)
    docs = store.documents()
    assert store.n_tokens == 150 and docs == shuffled[:len(docs)] and len(docs) == store.doc_ids().max() + 1
    chars = [docs[d][a:b] for d, (a, b) in zip(store.doc_ids(), store.offsets())]
    assert all(len(c) == 1 for c in chars)  # one token per character, pointing into its document
    assert store.manifest["corpus"]["sha256"] == _doc_hash(docs)


def test_resume_refuses_shards_of_a_corpus_that_changed(tmp_path, capture_args, capsys):
    from store_helpers import TEXT

    text = tmp_path / "t.txt"
    text.write_text(TEXT * 2)
    args = ["capture", *_args(capture_args, text), "--out", str(tmp_path / "s")]
    assert cli.main([*args, "--stop_after_shards", "2"]) == 0
    text.write_text(TEXT.replace("quick", "kciuq") * 2)  # same size, other content
    capsys.readouterr()
    assert cli.main(args) == 2
    err = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(err) == 1 and "shard 00000" in err[0] and "holds other tokens" in err[0], err
    assert cli.main([*args, "--overwrite"]) == 0
    assert ActivationStore.open(tmp_path / "s").documents() == [TEXT.replace("quick", "kciuq") * 2]
