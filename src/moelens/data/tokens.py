"""The token data directory: written by ``moelens data``, read by ``moelens train|eval``.

Layout (docs/interfaces.md, "Token data directory")::

    meta.json       written last, atomically: a directory without it is unfinished
    train.bin       flat token ids, numpy memmap of meta["dtype"]
    val.bin
    games_val.txt   chess only: one validation game per line
    tokenizer.json  text only

:class:`TokenData` opens a directory and checks that its meta and file sizes agree, so a reader
never trains on a truncated or foreign file. Extra meta keys beyond the contract (``eos_id`` for
text) are allowed and ignored by readers that do not need them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from moelens.data.chess.vocab import ChessTokenizer
from moelens.errors import DataError
from moelens.rundir import atomic_write_json

FORMAT = "moelens-tokens"
VERSION = 1
DTYPES = ("uint8", "uint16", "uint32")
REQUIRED = ("format", "version", "kind", "dtype", "vocab_size", "block_size", "tokenizer",
            "n_train", "n_val", "source", "seed")


def dtype_for_vocab(vocab_size: int) -> str:
    """The narrowest id dtype for a vocabulary: uint8 ≤ 256, uint16 ≤ 65535, else uint32."""
    if vocab_size <= 256:
        return "uint8"
    return "uint16" if vocab_size <= 65535 else "uint32"


def _check(meta: Any, where: Path) -> dict[str, Any]:
    def bad(why: str) -> DataError:
        return DataError(f"{where} is not a valid moelens token directory ({why}); "
                         "regenerate it with 'moelens data chess' or 'moelens data text'")

    if not isinstance(meta, dict):
        raise bad("meta.json is not a mapping")
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise bad(f"meta.json lacks {', '.join(missing)}")
    if meta["format"] != FORMAT or meta["version"] != VERSION:
        raise bad(f"format {meta['format']!r} version {meta['version']!r}, expected {FORMAT!r} "
                  f"version {VERSION}")
    if meta["kind"] not in ("chess", "text"):
        raise bad(f"kind {meta['kind']!r}")
    if meta["dtype"] not in DTYPES:
        raise bad(f"dtype {meta['dtype']!r}")
    for key in ("vocab_size", "n_train", "n_val"):
        if not isinstance(meta[key], int) or meta[key] < 0:
            raise bad(f"{key} {meta[key]!r}")
    if np.iinfo(meta["dtype"]).max < meta["vocab_size"] - 1:
        raise bad(f"vocab_size {meta['vocab_size']} does not fit {meta['dtype']}")
    bs = meta["block_size"]
    if bs is not None and (not isinstance(bs, int) or bs < 2
                           or meta["n_train"] % bs or meta["n_val"] % bs):
        raise bad(f"block_size {bs!r} does not divide the splits")
    if meta["kind"] == "chess" and bs is None:
        raise bad("chess data needs a block_size")
    return meta


def write_meta(out: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Validate ``meta`` against the files in ``out`` and write ``meta.json`` (atomically, last)."""
    meta = {"format": FORMAT, "version": VERSION, **meta}
    _check(meta, out)
    _check_sizes(out, meta)
    atomic_write_json(out / "meta.json", meta)
    return meta


def prepare_out(out: Path, identity: dict[str, Any], overwrite: bool, outputs: tuple[str, ...]) -> bool:
    """Decide what a data command does with its output directory.

    Returns False when ``out`` already holds a finished data set made from the same
    ``identity`` (settings and inputs recorded in ``meta.json``): nothing to do. A different
    finished set is an error unless ``overwrite``. Otherwise the final ``outputs`` are removed,
    ``meta.json`` first, so from here on the directory reads as unfinished, and True is returned.
    """
    if out.exists() and not out.is_dir():
        raise DataError(f"output {out} exists and is not a directory; choose another --out")
    meta_path = out / "meta.json"
    if meta_path.exists() and not overwrite:
        try:
            old = json.loads(meta_path.read_text()).get("source", {}).get("config")
        except ValueError:
            old = None
        if old == identity:
            return False
        raise DataError(f"{out} already holds a different finished data set; pass --overwrite "
                        "to replace it or choose another --out")
    for name in ("meta.json", *outputs):
        (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return True


def _check_sizes(root: Path, meta: dict[str, Any]) -> None:
    item = np.dtype(meta["dtype"]).itemsize
    for split in ("train", "val"):
        path = root / f"{split}.bin"
        want = meta[f"n_{split}"] * item
        have = path.stat().st_size if path.exists() else -1
        if have != want:
            raise DataError(f"{path} holds {max(have, 0)} bytes but meta.json says {want}; the "
                            "directory is damaged, regenerate it")
    tok = meta["tokenizer"]
    if meta["kind"] == "text" and not (root / tok).is_file():
        raise DataError(f"{root / tok} is missing; regenerate the directory with "
                        "'moelens data text'")


def load_tokenizer_file(path: Path, eos_token: str | None = None):
    """A ``PreTrainedTokenizerFast`` from a ``tokenizer.json`` (offline, no hub access)."""
    from transformers import PreTrainedTokenizerFast

    try:
        tok = PreTrainedTokenizerFast(tokenizer_file=str(path), clean_up_tokenization_spaces=False)
    except Exception as exc:  # tokenizers raises plain Exceptions for bad JSON
        raise DataError(f"cannot read tokenizer {path} ({str(exc).splitlines()[0][:200]}); give a "
                        "valid tokenizer.json") from None
    if eos_token is not None and eos_token in tok.get_vocab():
        tok.eos_token = eos_token
    return tok


class TokenData:
    """An opened token data directory: ``.meta``, ``.train``/``.val`` memmaps, ``.tokenizer()``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError(f"data directory {self.path} does not exist; create it with "
                            "'moelens data chess' or 'moelens data text'")
        meta_path = self.path / "meta.json"
        if not meta_path.is_file():
            raise DataError(f"{self.path} has no meta.json (missing or unfinished); rerun "
                            "'moelens data chess|text' to finish it")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{meta_path} cannot be read ({exc}); regenerate the "
                            "directory") from None
        self.meta: dict[str, Any] = _check(meta, self.path)
        _check_sizes(self.path, self.meta)
        self._maps: dict[str, np.ndarray] = {}

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    @property
    def block_size(self) -> int | None:
        return self.meta["block_size"]

    @property
    def vocab_size(self) -> int:
        return self.meta["vocab_size"]

    def _map(self, split: str) -> np.ndarray:
        if split not in self._maps:
            n = self.meta[f"n_{split}"]
            dtype = np.dtype(self.meta["dtype"])
            self._maps[split] = (np.memmap(self.path / f"{split}.bin", dtype=dtype, mode="r",
                                           shape=(n,)) if n else np.zeros(0, dtype=dtype))
        return self._maps[split]

    @property
    def train(self) -> np.ndarray:
        return self._map("train")

    @property
    def val(self) -> np.ndarray:
        return self._map("val")

    def games_val(self) -> list[str]:
        """Validation games (chess only), one string per game."""
        path = self.path / "games_val.txt"
        if self.kind != "chess" or not path.is_file():
            raise DataError(f"{self.path} has no games_val.txt; it is only written for chess data")
        return [g for g in path.read_text(encoding="ascii").splitlines() if g]

    def tokenizer(self):
        """``ChessTokenizer`` for chess; a ``PreTrainedTokenizerFast`` (eos set) for text."""
        if self.kind == "chess":
            return ChessTokenizer()
        return load_tokenizer_file(self.path / self.meta["tokenizer"], self.meta.get("eos_token"))
