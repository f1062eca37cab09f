"""Corpus input for capture: documents -> tokens with character offsets -> windows -> shards.

Documents come from local files (``.txt`` one document per file, ``.jsonl``/``.parquet`` one per
record, ``.pgn`` one per game, and ``;1.e4 …`` transcript files one game per line) or from a hub
dataset through ``datasets`` (imported only when asked for). Each document is tokenized once with
offsets and cut into windows of at most ``ctx`` tokens that never cross documents; windows are
grouped into shards closed once they hold ``shard_tokens`` tokens. Everything here depends only on
the corpus and the settings, so shard boundaries are the same in every run and on every rank.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moelens.errors import ConfigError, DataError

TEXT_SUFFIXES = (".txt", ".text", ".md")


@dataclass
class Corpus:
    """Document texts (index = doc id) and what they came from."""

    documents: list[str]
    kind: str  # "text" or "chess"
    description: dict[str, Any]

    def sha256(self) -> str:
        h = hashlib.sha256()
        for doc in self.documents:
            data = doc.encode("utf-8")
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
        return h.hexdigest()


@dataclass
class Window:
    """Up to ``ctx`` consecutive tokens of one document: the unit of batching."""

    doc: int
    ids: np.ndarray  # int64 [n]
    offsets: np.ndarray  # int64 [n, 2] character span in the document


@dataclass
class ShardPlan:
    """Consecutive windows recorded together as shard ``index``: global tokens [start, stop)."""

    index: int
    start: int
    stop: int
    windows: list[Window] = field(default_factory=list)


def pgn_transcripts(text: str) -> list[str]:
    """The games of a PGN text as ``;1.e4 e5 2.Nf3 …`` transcripts (comments and variations dropped)."""
    import chess.pgn

    games, stream = [], io.StringIO(text)
    while (game := chess.pgn.read_game(stream)) is not None:
        board, parts = game.board(), []
        for move in game.mainline_moves():
            san = board.san(move)
            parts.append(f"{board.fullmove_number}.{san}" if board.turn else san)
            board.push(move)
        if parts:
            games.append(";" + " ".join(parts))
    return games


def _read_file(path: Path, text_field: str) -> tuple[list[str], str]:
    suffix = path.suffix.lower()
    if suffix == ".pgn":
        return pgn_transcripts(path.read_text(encoding="utf-8", errors="replace")), "chess"
    if suffix == ".jsonl":
        docs = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise DataError(f"{path}:{n} is not valid JSON; fix the line or drop it") from None
            if not isinstance(record, dict) or text_field not in record:
                raise DataError(f"{path}:{n} has no field {text_field!r}; set --text_field")
            docs.append(str(record[text_field]))
        return docs, "text"
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        if text_field not in table.column_names:
            raise DataError(f"{path} has no column {text_field!r} (columns: "
                            f"{', '.join(table.column_names)}); set --text_field")
        return [str(v) for v in table.column(text_field).to_pylist()], "text"
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = [l for l in text.splitlines() if l.strip()]
    if lines and lines[0].lstrip().startswith(";1."):
        return [l.strip() for l in lines], "chess"
    return ([text] if text.strip() else []), "text"


def load_files(paths: list[Path], text_field: str = "text") -> Corpus:
    """Documents of local corpus files, in the order given."""
    if not paths:
        raise ConfigError("no corpus given; pass --corpus FILE ... or --dataset NAME")
    docs: list[str] = []
    kinds: set[str] = set()
    files = []
    for p in paths:
        p = Path(p)
        if not p.is_file():
            raise DataError(f"corpus file {p} does not exist; check the path")
        found, kind = _read_file(p, text_field)
        docs += found
        kinds.add(kind)
        files.append({"path": str(p), "bytes": p.stat().st_size, "documents": len(found)})
    if not any(d for d in docs):
        raise DataError(f"the corpus ({', '.join(map(str, paths))}) holds no text; give non-empty files")
    if len(kinds) > 1:
        raise DataError("the corpus mixes chess games and text; capture them into separate stores")
    return Corpus(docs, kinds.pop(), {"files": files})


def load_hub_dataset(name: str, split: str, text_field: str, max_chars: int | None = None) -> Corpus:
    """Documents of a hub dataset via ``datasets`` (a network path: not used offline or in tests).

    With ``max_chars`` the split is streamed and reading stops once that many characters are in
    hand (capture passes a generous multiple of ``--tokens``), so a large corpus is not downloaded
    whole; the documents read are the same on every run and every rank.
    """
    try:
        import datasets
    except ImportError:
        raise ConfigError("--dataset needs the 'datasets' package; pip install 'moelens[hub]' "
                          "or give local --corpus files") from None
    try:
        ds = datasets.load_dataset(name, split=split, streaming=max_chars is not None)
        docs, chars = [], 0
        for record in ds:
            if text_field not in record:
                raise DataError(f"dataset {name!r} has no field {text_field!r}; set --text_field")
            docs.append(str(record[text_field]))
            chars += len(docs[-1])
            if max_chars is not None and chars >= max_chars:
                break
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001  (offline, unknown name, bad split: one line)
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError(f"cannot load dataset {name!r} split {split!r} ({type(exc).__name__}: "
                        f"{first}); check the name or go online") from None
    if not docs:
        raise DataError(f"dataset {name!r} split {split!r} is empty")
    return Corpus(docs, "text", {"dataset": name, "split": split, "text_field": text_field,
                                 "max_chars": max_chars})


def tokenize(corpus: Corpus, tokenizer: Any, ctx: int, max_tokens: int | None) -> list[Window]:
    """Cut every document into windows of at most ``ctx`` tokens, up to ``max_tokens`` in all."""
    windows: list[Window] = []
    total = 0
    for doc_id, text in enumerate(corpus.documents):
        if max_tokens is not None and total >= max_tokens:
            break
        try:
            enc = tokenizer(text, return_offsets_mapping=True)
        except Exception as exc:  # noqa: BLE001  (e.g. a character outside a closed vocabulary)
            raise DataError(f"document {doc_id} cannot be tokenized ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}); clean the corpus") from None
        ids = np.asarray(enc["input_ids"], dtype=np.int64)
        offsets = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
        for a in range(0, ids.size, ctx):
            n = min(ctx, ids.size - a)
            if max_tokens is not None:
                n = min(n, max_tokens - total)
            if n <= 0:
                break
            windows.append(Window(doc_id, ids[a:a + n], offsets[a:a + n]))
            total += n
    if total == 0:
        raise DataError("the corpus produced no tokens; give non-empty documents")
    return windows


def plan_shards(windows: list[Window], shard_tokens: int) -> list[ShardPlan]:
    """Group consecutive windows into shards of at least ``shard_tokens`` tokens (last may be short)."""
    shards: list[ShardPlan] = []
    current = ShardPlan(0, 0, 0)
    for w in windows:
        current.windows.append(w)
        current.stop += w.ids.size
        if current.stop - current.start >= shard_tokens:
            shards.append(current)
            current = ShardPlan(len(shards), current.stop, current.stop)
    if current.windows:
        shards.append(current)
    return shards


def resolve_tokenizer(model: str, kind: str) -> tuple[Any, dict[str, Any]]:
    """The model's own tokenizer when it has one; for chess corpora otherwise the chess tokenizer."""
    from transformers import AutoTokenizer

    local = Path(model).is_dir()
    has_local = local and any((Path(model) / f).exists()
                              for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json"))
    if has_local or not local:
        try:
            tok = AutoTokenizer.from_pretrained(model)
            if not getattr(tok, "is_fast", False):
                raise DataError(f"the tokenizer of {model} is not a fast tokenizer; capture needs "
                                "character offsets (a tokenizer.json)")
            return tok, {"source": "model", "name": model, "class": type(tok).__name__}
        except DataError:
            raise
        except Exception:  # noqa: BLE001  (missing files, offline hub: fall back or one line)
            if kind != "chess":
                raise DataError(f"cannot load the tokenizer of {model}; put a tokenizer.json in the "
                                "model directory (or check the hub id / go online)") from None
    if kind == "chess":
        try:
            from moelens.data.chess import chess_tokenizer
        except ImportError:
            raise DataError("chess corpus and no tokenizer in the model directory, and "
                            "moelens.data.chess is unavailable; save a tokenizer with the model") from None
        return chess_tokenizer(), {"source": "chess"}
    raise DataError(f"{model} has no tokenizer; save one in the model directory (tokenizer.json)")
