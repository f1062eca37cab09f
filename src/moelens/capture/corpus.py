"""Corpus input for capture: the documents of local files or a hub dataset, read lazily.

Documents come from local files (``.txt`` one document per file, ``.jsonl``/``.parquet`` one per
record, ``.pgn`` one per game, and ``;1.e4 …`` transcript files one game per line) or from a hub
dataset through ``datasets`` (imported only when asked for). Opening a corpus reads only the start
of each file (to tell chess from text); :meth:`Corpus.documents` then reads one document at a time,
so capture holds one document, never the corpus, and a capture of ``--tokens N`` reads no further
than the document that completes them.

A shuffled corpus needs random access: a first pass notes where each document starts (file and
byte offset, 16 bytes a document, the only thing that grows with the corpus), then documents are
read in the order of a seeded permutation of their indices.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moelens.errors import ConfigError, DataError

TEXT_SUFFIXES = (".txt", ".text", ".md")

#: a document's place in its source, for reading it again: (offset, part) in a source's own terms
Locator = tuple[int, int]


def pgn_transcripts(text: str) -> list[str]:
    """The games of a PGN text as ``;1.e4 e5 2.Nf3 …`` transcripts (comments and variations dropped)."""
    stream = io.StringIO(text)
    return [t for t in iter(lambda: _read_transcript(stream), None) if t]


def _read_transcript(handle: Any) -> str | None:
    """The next game of a PGN stream as a transcript ("" for a game without moves), None at the end."""
    import chess.pgn

    game = chess.pgn.read_game(handle)
    if game is None:
        return None
    board, parts = game.board(), []
    for move in game.mainline_moves():
        san = board.san(move)
        parts.append(f"{board.fullmove_number}.{san}" if board.turn else san)
        board.push(move)
    return ";" + " ".join(parts) if parts else ""


def _raw_lines(path: Path, errors: str, start: int = 0, json_lines: bool = False
               ) -> Iterator[tuple[int, list[str]]]:
    """(byte offset, text lines) of each ``\\n``-terminated run of bytes of ``path`` from ``start``.

    The lines of a run are ``run.decode().splitlines()``: concatenated over the file this is
    exactly ``path.read_text().splitlines()`` (UTF-8 never puts a ``\\n`` byte inside a character),
    and the offsets let a document be read again without reading what comes before it. JSON
    Lines (``json_lines``) end at ``\\n``, ``\\r\\n`` or ``\\r`` only: a JSON string may hold
    U+2028, U+2029 or U+0085 unescaped, where ``splitlines`` would cut a record.
    """
    with open(path, "rb") as fh:
        fh.seek(start)
        offset = start
        for raw in fh:
            text = raw.decode("utf-8", errors=errors)
            yield offset, _json_lines(text) if json_lines else text.splitlines()
            offset += len(raw)


def _json_lines(text: str) -> list[str]:
    """``text.splitlines()`` at ASCII line ends only."""
    lines = re.split(r"\r\n|\r|\n", text)
    return lines[:-1] if lines and lines[-1] == "" else lines


class _PgnLines:
    """A ``readline`` handle over a file's bytes that knows where its next line starts.

    Lines are split as ``read_text()`` then ``StringIO`` split them (``\\r\\n`` and ``\\r`` read as
    ``\\n``), so games parse exactly as from the whole text; :meth:`position` is a place to
    :meth:`seek` back to later.
    """

    def __init__(self, fh: Any):
        self.fh = fh
        self.offset = fh.tell()  # byte offset of the run the queued lines came from
        self.queue: list[str] = []
        self.taken = 0  # lines of that run already returned

    def position(self) -> Locator:
        if not self.queue:
            return self.fh.tell(), 0
        return self.offset, self.taken

    def seek(self, loc: Locator) -> None:
        self.fh.seek(loc[0])
        self.queue, self.taken = [], 0
        self.offset = loc[0]
        for _ in range(loc[1]):
            self.readline()

    def readline(self) -> str:
        if not self.queue:
            self.offset = self.fh.tell()
            raw = self.fh.readline()
            if not raw:
                return ""
            text = raw.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
            parts = text.split("\n")
            self.queue = [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
            self.taken = 0
        self.taken += 1
        line = self.queue.pop(0)
        if not self.queue:
            self.taken = 0
        return line


class FileSource:
    """One corpus file: its kind, and its documents with where each starts."""

    def __init__(self, path: Path, text_field: str):
        self.path, self.text_field = path, text_field
        suffix = path.suffix.lower()
        if suffix == ".pgn":
            self.format, self.kind = "pgn", "chess"
        elif suffix == ".jsonl":
            self.format, self.kind = "jsonl", "text"
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            self.parquet = pq.ParquetFile(path)
            names = self.parquet.schema_arrow.names
            if text_field not in names:
                raise DataError(f"{path} has no column {text_field!r} (columns: "
                                f"{', '.join(names)}); set --text_field")
            self.format, self.kind = "parquet", "text"
            self._group: tuple[int, list[Any]] | None = None
        else:
            first = next((l for _, lines in _raw_lines(path, "replace") for l in lines if l.strip()), None)
            chess_lines = first is not None and first.lstrip().startswith(";1.")
            self.format = "transcripts" if chess_lines else "text"
            self.kind = "chess" if chess_lines else "text"

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "bytes": self.path.stat().st_size}

    def scan(self) -> Iterator[tuple[Locator, str]]:
        """Every document of the file, in order, with its locator."""
        if self.format == "text":
            text = self.path.read_text(encoding="utf-8", errors="replace")
            if text.strip():
                yield (0, 0), text
        elif self.format in ("transcripts", "jsonl"):
            n = 0
            errors = "strict" if self.format == "jsonl" else "replace"
            for offset, lines in _raw_lines(self.path, errors, json_lines=self.format == "jsonl"):
                for part, line in enumerate(lines):
                    n += 1
                    if line.strip():
                        yield (offset, part), self._line_document(line, n)
        elif self.format == "pgn":
            with open(self.path, "rb") as fh:
                handle = _PgnLines(fh)
                while True:
                    loc = handle.position()
                    game = _read_transcript(handle)
                    if game is None:
                        break
                    if game:
                        yield loc, game
        else:
            row = 0
            for batch in self.parquet.iter_batches(columns=[self.text_field]):
                for value in batch.column(0).to_pylist():
                    yield (row, 0), str(value)
                    row += 1

    def read(self, loc: Locator) -> str:
        """The document at ``loc`` (a locator :meth:`scan` gave)."""
        if self.format == "text":
            return self.path.read_text(encoding="utf-8", errors="replace")
        if self.format in ("transcripts", "jsonl"):
            errors = "strict" if self.format == "jsonl" else "replace"
            _, lines = next(_raw_lines(self.path, errors, loc[0], self.format == "jsonl"))
            return self._line_document(lines[loc[1]], 0)
        if self.format == "pgn":
            with open(self.path, "rb") as fh:
                handle = _PgnLines(fh)
                handle.seek(loc)
                return _read_transcript(handle) or ""
        return self._parquet_row(loc[0])

    def _line_document(self, line: str, n: int) -> str:
        if self.format == "transcripts":
            return line.strip()
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise DataError(f"{self.path}:{n} is not valid JSON; fix the line or drop it") from None
        if not isinstance(record, dict) or self.text_field not in record:
            raise DataError(f"{self.path}:{n} has no field {self.text_field!r}; set --text_field")
        return str(record[self.text_field])

    def _parquet_row(self, row: int) -> str:
        """One row of the text column; the row group read last is kept (shuffled reads of a
        parquet file cost a row group each)."""
        meta = self.parquet.metadata
        group, first = 0, 0
        while first + meta.row_group(group).num_rows <= row:
            first += meta.row_group(group).num_rows
            group += 1
        if self._group is None or self._group[0] != group:
            table = self.parquet.read_row_group(group, columns=[self.text_field])
            self._group = (group, table.column(0).to_pylist())
        return str(self._group[1][row - first])


class HubSource:
    """A hub dataset split read through ``datasets`` (a network path: not used offline or in tests).

    With ``max_chars`` the split is streamed and reading stops once that many characters are in
    hand (capture passes a generous multiple of ``--tokens``), so a large corpus is not downloaded
    whole; the documents read are the same on every run and every rank.
    """

    kind = "text"

    def __init__(self, name: str, split: str, text_field: str, max_chars: int | None = None):
        self.name, self.split, self.text_field, self.max_chars = name, split, text_field, max_chars
        try:
            import datasets
        except ImportError:
            raise ConfigError("--dataset needs the 'datasets' package; pip install 'moelens[hub]' "
                              "or give local --corpus files") from None
        self.ds = self._guard(lambda: datasets.load_dataset(name, split=split,
                                                            streaming=max_chars is not None))

    def _guard(self, fn: Any) -> Any:
        try:
            return fn()
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001  (offline, unknown name, bad split: one line)
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise DataError(f"cannot load dataset {self.name!r} split {self.split!r} "
                            f"({type(exc).__name__}: {first}); check the name or go online") from None

    def describe(self) -> dict[str, Any]:
        return {"dataset": self.name, "split": self.split, "text_field": self.text_field,
                "max_chars": self.max_chars}

    def _text(self, record: Any) -> str:
        if self.text_field not in record:
            raise DataError(f"dataset {self.name!r} has no field {self.text_field!r}; set --text_field")
        return str(record[self.text_field])

    def scan(self) -> Iterator[tuple[Locator, str]]:
        records = self._guard(lambda: iter(self.ds))
        chars, i = 0, 0
        while (record := self._guard(lambda: next(records, None))) is not None:
            text = self._text(record)
            yield (i, 0), text
            i += 1
            chars += len(text)
            if self.max_chars is not None and chars >= self.max_chars:
                break
        if i == 0:
            raise DataError(f"dataset {self.name!r} split {self.split!r} is empty")

    def read(self, loc: Locator) -> str:
        return self._text(self._guard(lambda: self.ds[int(loc[0])]))


@dataclass
class Corpus:
    """Where the documents come from (index in :meth:`documents` = doc id) and what they are."""

    sources: list[Any]  # FileSource or HubSource
    kind: str  # "text" or "chess"
    description: dict[str, Any] = field(default_factory=dict)
    shuffle_seed: int | None = None  # read the documents in a seeded random order

    def documents(self) -> Iterator[str]:
        """The documents, read one at a time (see the module docstring for --shuffle)."""
        found = False
        for text in (self._shuffled() if self.shuffle_seed is not None else
                     (text for s in self.sources for _, text in s.scan())):
            found = found or bool(text)
            yield text
        if not found:
            what = ", ".join(str(s.path) if hasattr(s, "path") else f"dataset {s.name!r}"
                             for s in self.sources)
            raise DataError(f"the corpus ({what}) holds no text; give non-empty documents")

    def _shuffled(self) -> Iterator[str]:
        """Documents in the order of ``default_rng(seed).permutation`` of their indices."""
        which, where = [], []
        for i, source in enumerate(self.sources):
            locs = [loc for loc, _ in source.scan()]
            which.append(np.full(len(locs), i, dtype=np.int32))
            where.append(np.asarray(locs, dtype=np.int64).reshape(-1, 2))
        which_a, where_a = np.concatenate(which), np.concatenate(where)
        for k in np.random.default_rng(self.shuffle_seed).permutation(which_a.size):
            yield self.sources[which_a[k]].read((int(where_a[k, 0]), int(where_a[k, 1])))


def load_files(paths: list[Path], text_field: str = "text") -> Corpus:
    """The corpus of local files, in the order given (only the start of each file is read here)."""
    if not paths:
        raise ConfigError("no corpus given; pass --corpus FILE ... or --dataset NAME")
    sources = []
    for p in map(Path, paths):
        if not p.is_file():
            raise DataError(f"corpus file {p} does not exist; check the path")
        sources.append(FileSource(p, text_field))
    kinds = {s.kind for s in sources}
    if len(kinds) > 1:
        raise DataError("the corpus mixes chess games and text; capture them into separate stores")
    return Corpus(sources, kinds.pop(), {"files": [s.describe() for s in sources]})


def load_hub_dataset(name: str, split: str, text_field: str, max_chars: int | None = None) -> Corpus:
    """The corpus of a hub dataset split (see :class:`HubSource`)."""
    source = HubSource(name, split, text_field, max_chars)
    return Corpus([source], "text", source.describe())


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
