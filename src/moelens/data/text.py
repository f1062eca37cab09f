"""``moelens data text``: local text corpora → tokenizer → uint16/uint32 token memmaps.

Documents come from .txt files (whole file, lines or paragraphs), .jsonl files (one record per
line, ``text_field``) and .parquet files (column ``text_field``), read lazily in the given order.
The validation documents are drawn by index with ``default_rng(seed)`` after a counting pass, so
the split is exact and deterministic. The tokenizer is either a byte-level BPE trained here with
the ``tokenizers`` library on the training documents only, or an existing one loaded offline.
It is always saved as ``tokenizer.json`` and read back through ``PreTrainedTokenizerFast``
(transformers 5 builds an empty tokenizer from ``GPT2TokenizerFast(vocab_file=, merges_file=)``,
so vocab/merges files are never used). Documents are encoded without the tokenizer's own special
tokens (no BOS from a post-processor) and each is followed by the EOS token.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from moelens.config import to_dict
from moelens.data.tokens import load_tokenizer_file, prepare_out, write_meta
from moelens.errors import DataError
from moelens.rundir import atomic_path

SUFFIXES = (".txt", ".jsonl", ".parquet")


def corpus_files(inputs: list[Path]) -> list[Path]:
    """Expand directories (sorted, recursive) and check every input exists and is readable."""
    if not inputs:
        raise DataError("no inputs given; pass text files or directories with --inputs")
    files: list[Path] = []
    for p in map(Path, inputs):
        if not p.exists():
            raise DataError(f"input {p} does not exist; check the path")
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
            if not found:
                raise DataError(f"directory {p} holds no .txt, .jsonl or .parquet files")
            files += found
        elif p.suffix.lower() in SUFFIXES:
            files.append(p)
        else:
            raise DataError(f"input {p} is not .txt, .jsonl or .parquet; convert it or rename it")
    return files


def _docs_of(path: Path, text_field: str, txt_documents: str) -> Iterator[str]:
    suffix = path.suffix.lower()
    if suffix == ".txt":
        text = path.read_text(encoding="utf-8", errors="replace")
        if txt_documents == "file":
            yield text
        elif txt_documents == "line":
            yield from text.splitlines()
        else:
            yield from (p.strip("\n") for p in text.replace("\r\n", "\n").split("\n\n"))
    elif suffix == ".jsonl":
        with open(path, encoding="utf-8", errors="replace") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    raise DataError(f"{path}:{n} is not valid JSON; fix or remove the line") \
                        from None
                if not isinstance(rec, dict) or text_field not in rec:
                    raise DataError(f"{path}:{n} has no field {text_field!r}; set --text_field")
                yield str(rec[text_field] or "")
    else:
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises several kinds for a bad file
            raise DataError(f"{path} is not a readable parquet file ({exc})") from None
        if text_field not in pf.schema_arrow.names:
            raise DataError(f"{path} has no column {text_field!r} (columns: "
                            f"{', '.join(pf.schema_arrow.names)}); set --text_field")
        for batch in pf.iter_batches(columns=[text_field], batch_size=4096):
            yield from (t or "" for t in batch.column(0).to_pylist())


def documents(files: list[Path], text_field: str, txt_documents: str) -> Iterator[str]:
    """Every non-blank document of the corpus, in order."""
    for f in files:
        for doc in _docs_of(f, text_field, txt_documents):
            if doc.strip():
                yield doc


# ---------------------------------------------------------------- tokenizers


def load_tokenizer(spec: str, eos_token: str):
    """The user's tokenizer: a tokenizer.json file or a local HF tokenizer directory."""
    path = Path(spec)
    if not path.exists():
        raise DataError(f"unknown tokenizer {spec!r}: not 'train' and no such file or directory; "
                        "give --tokenizer train or a path to tokenizer.json / a tokenizer folder")
    if path.is_file():
        tok = load_tokenizer_file(path)
    elif (path / "tokenizer.json").is_file():
        tok = load_tokenizer_file(path / "tokenizer.json")
        with contextlib.suppress(Exception):
            from transformers import PreTrainedTokenizerFast

            tok = PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)
    else:
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True, use_fast=True)
        except Exception as exc:
            raise DataError(f"cannot load a tokenizer from {path} ({type(exc).__name__}); give a "
                            "folder saved by save_pretrained or a tokenizer.json") from None
        if not getattr(tok, "is_fast", False):
            raise DataError(f"tokenizer in {path} is not a fast tokenizer; save it as "
                            "tokenizer.json")
    if tok.eos_token is None:
        if eos_token not in tok.get_vocab():
            raise DataError(f"tokenizer {spec} has no eos_token and no {eos_token!r} token; set "
                            "--eos_token to one of its tokens")
        tok.eos_token = eos_token
    if len(tok) == 0:
        raise DataError(f"tokenizer {spec} has an empty vocabulary; save it as tokenizer.json")
    return tok


def train_bpe(docs: Iterator[str], vocab_size: int, eos_token: str):
    """A byte-level BPE trained on ``docs`` (EOS is id 0), wrapped as PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[eos_token],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  min_frequency=2, show_progress=False)
    core.train_from_iterator(docs, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token=eos_token,
                                   clean_up_tokenization_spaces=False)


# ---------------------------------------------------------------- build


def _identity(cfg, files: list[Path]) -> dict:
    """What decides the data: the settings that matter and each input file's size and mtime."""
    ident = {k: v for k, v in to_dict(cfg).items() if k not in ("quiet", "overwrite", "out")}
    ident["input_files"] = [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    return ident


def build_text(cfg) -> dict | None:
    """Run ``moelens data text``; returns the written meta (None when already up to date)."""
    files = corpus_files(cfg.inputs)
    if cfg.tokenizer != "train" and not Path(cfg.tokenizer).exists():
        load_tokenizer(cfg.tokenizer, cfg.eos_token)  # raises the one-line error
    ident = _identity(cfg, files)
    if not prepare_out(cfg.out, ident, cfg.overwrite, ("train.bin", "val.bin", "tokenizer.json")):
        print(f"{cfg.out} is already up to date (pass --overwrite to rebuild)")
        return None

    def docs() -> Iterator[str]:
        return documents(files, cfg.text_field, cfg.txt_documents)

    n = sum(1 for _ in tqdm(docs(), desc="count", unit="doc", disable=cfg.quiet,
                            file=sys.stderr, delay=1.0))
    if n == 0:
        raise DataError(f"empty corpus: no non-blank documents in {', '.join(map(str, files))}")
    if n < 2:
        raise DataError("the corpus holds 1 document; need at least 2 (one for validation) — "
                        "split it with --txt_documents line or paragraph, or add files")
    n_val = min(n - 1, max(1, round(n * cfg.val_fraction)))
    is_val = np.zeros(n, dtype=bool)
    is_val[np.random.default_rng(cfg.seed).choice(n, n_val, replace=False)] = True

    if cfg.tokenizer == "train":
        train_docs = (d for d, v in zip(docs(), is_val) if not v)
        tok = train_bpe(train_docs, cfg.vocab_size, cfg.eos_token)
    else:
        tok = load_tokenizer(cfg.tokenizer, cfg.eos_token)
    vocab_size = max(len(tok), tok.backend_tokenizer.get_vocab_size(with_added_tokens=True))
    eos_id = tok.convert_tokens_to_ids(tok.eos_token)
    dtype = np.dtype("uint16" if vocab_size <= 65535 else "uint32")
    counts = {"train": 0, "val": 0}
    with atomic_path(cfg.out / "train.bin") as t_tmp, atomic_path(cfg.out / "val.bin") as v_tmp, \
            open(t_tmp, "wb") as t_fh, open(v_tmp, "wb") as v_fh:
        fhs = {"train": t_fh, "val": v_fh}
        batch: list[str] = []
        flags: list[bool] = []
        bar = tqdm(total=n, desc="tokenize", unit="doc", disable=cfg.quiet, file=sys.stderr,
                   delay=1.0)

        def flush() -> None:
            enc = tok.backend_tokenizer.encode_batch(batch, add_special_tokens=False)
            for e, val in zip(enc, flags):
                ids = np.asarray([*e.ids, eos_id], dtype=dtype)
                split = "val" if val else "train"
                ids.tofile(fhs[split])
                counts[split] += len(ids)
            bar.update(len(batch))
            batch.clear()
            flags.clear()

        for doc, val in zip(docs(), is_val):
            batch.append(doc)
            flags.append(bool(val))
            if len(batch) >= cfg.batch_docs:
                flush()
        if batch:
            flush()
        bar.close()
    with atomic_path(cfg.out / "tokenizer.json") as tmp:
        tok.backend_tokenizer.save(str(tmp))
    meta = write_meta(cfg.out, {
        "kind": "text", "dtype": dtype.name, "vocab_size": vocab_size, "block_size": None,
        "tokenizer": "tokenizer.json", "n_train": counts["train"], "n_val": counts["val"],
        "eos_token": tok.eos_token, "eos_id": int(eos_id),
        "source": {"files": [str(f) for f in files], "n_documents": n, "n_val_documents": n_val,
                   "tokenizer": cfg.tokenizer, "add_special_tokens": False, "config": ident},
        "seed": cfg.seed})
    print(f"wrote {cfg.out}: {n - n_val} train / {n_val} val documents, {counts['train']} + "
          f"{counts['val']} tokens, vocab {vocab_size} ({dtype.name})")
    return meta
