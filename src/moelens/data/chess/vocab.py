"""Chess games as character strings: the 32-character vocabulary, game strings and tokenizers.

A game is written ``;1.e4 e5 2.Nf3 Nc6 …`` (standard SAN, no result), exactly as the reference
chess models of Karvonen et al. were trained, so every character is one of :data:`CHESS_VOCAB`
and its index is the token id. Anything that turns text into a training game goes through
:func:`replay` so that only games python-chess accepts as legal, canonical SAN ever reach a model.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import chess
import numpy as np

from moelens.errors import DataError

CHESS_VOCAB = " #+-.0123456789;=BKNOQRabcdefghx"
"""The vocabulary in id order: ``sorted(set(" #+-.0123456789;=BKNOQRabcdefghx"))``."""

CHESS_VOCAB_SIZE = len(CHESS_VOCAB)
GAME_START = ";"
"""Every game (and every training block) begins with this character."""

PAD_TOKEN = GAME_START
"""Padding token of :func:`chess_tokenizer` (id 15). No new id is added, so a padded position is
indistinguishable from a real ';' by id: always use the returned ``attention_mask``."""

_LUT = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(CHESS_VOCAB):
    _LUT[ord(_c)] = _i
_VOCAB_BYTES = np.frombuffer(CHESS_VOCAB.encode("ascii"), dtype=np.uint8)

assert CHESS_VOCAB == "".join(sorted(set(CHESS_VOCAB))) and CHESS_VOCAB_SIZE == 32


def outside_vocab(text: str) -> set[str]:
    """The characters of ``text`` that are not in the chess vocabulary (empty when it is clean)."""
    return set(text) - set(CHESS_VOCAB)


def encode(text: str) -> np.ndarray:
    """Token ids (uint8) of a chess string; DataError names any character outside the vocab."""
    try:
        raw = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError:
        raw = None
    ids = None if raw is None else _LUT[raw]
    if ids is None or (ids == 255).any():
        bad = "".join(sorted(outside_vocab(text)))
        raise DataError(f"chess text contains characters outside the 32-character vocabulary: "
                        f"{bad!r}; only {CHESS_VOCAB!r} are allowed")
    return ids


def decode(ids: Iterable[int] | np.ndarray) -> str:
    """The chess string of token ids (raises DataError for an id outside 0..31)."""
    arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= CHESS_VOCAB_SIZE):
        raise DataError(f"chess token ids must lie in 0..{CHESS_VOCAB_SIZE - 1}")
    return _VOCAB_BYTES[arr].tobytes().decode("ascii")


def game_string(sans: Sequence[str]) -> str:
    """``;1.e4 e5 2.Nf3 …`` from a list of SAN moves (White first)."""
    parts = []
    for i, san in enumerate(sans):
        parts.append(f"{i // 2 + 1}.{san}" if i % 2 == 0 else san)
    return GAME_START + " ".join(parts)


class IllegalGame(ValueError):
    """A game string that does not replay: wrong format, illegal or non-canonical move."""

    def __init__(self, reason: str, ply: int, partial: bool = False):
        super().__init__(reason)
        self.ply = ply
        self.partial = partial
        """True when only the last token is bad and is a prefix of a legal token (cut-off text)."""


def replay(text: str) -> list[str]:
    """Replay a game string with python-chess and return its SAN moves.

    Raises :class:`IllegalGame` unless the string is exactly ``game_string(moves)`` for a legal
    sequence of moves from the standard start (canonical SAN, numbers in order, single spaces,
    no move after mate or stalemate). ``partial`` on the exception marks text whose only fault is
    a last token cut short (a prefix of a legal token), as block boundaries leave.
    """
    if not text.startswith(GAME_START) or len(text) < 2:
        raise IllegalGame("does not start with ';' followed by moves", 0)
    bad = outside_vocab(text)
    if bad:
        raise IllegalGame(f"characters outside the vocabulary: {''.join(sorted(bad))!r}", 0)
    words = text[1:].split(" ")
    board = chess.Board()
    sans: list[str] = []
    for pos, word in enumerate(words):
        last = pos == len(words) - 1
        if len(sans) % 2 == 0:
            number = f"{len(sans) // 2 + 1}."
            if not word.startswith(number):
                raise IllegalGame(f"expected move number {number!r} before {word!r}", len(sans),
                                  partial=last and number.startswith(word))
            word = word[len(number):]
            if not word:
                raise IllegalGame("a move number without a move", len(sans), partial=last)
        if board.is_game_over(claim_draw=False):
            raise IllegalGame(f"move {word!r} after the game ended", len(sans))
        try:
            move = board.parse_san(word)
        except ValueError:
            partial = last and any(board.san(m).startswith(word) for m in board.legal_moves)
            raise IllegalGame(f"illegal or unparsable move {word!r}", len(sans), partial) from None
        san = board.san(move)
        if san != word:
            raise IllegalGame(f"non-canonical SAN {word!r} (python-chess writes {san!r})",
                              len(sans), partial=last and san.startswith(word))
        board.push(move)
        sans.append(san)
    if game_string(sans) != text:
        raise IllegalGame("not in the canonical ';1.e4 e5 2.Nf3' layout", len(sans))
    return sans


def trim_partial(text: str) -> str:
    """Drop the trailing cut-off token a block boundary left (``… e5 12.Nf`` → ``… e5``)."""
    if text.endswith(" "):
        return text.rstrip(" ")
    head, sep, _ = text.rpartition(" ")
    return head if sep else GAME_START


def chess_tokenizer():
    """A Hugging Face ``PreTrainedTokenizerFast`` over the 32 characters (one token per character).

    Token ids equal :func:`encode`; ``offsets_mapping`` gives each character's span; no special
    tokens are added and no ids are created: the pad token is ``';'`` (id 15), so callers must use
    the attention mask (never ``ids != pad_token_id``) to tell padding from a real ``';'``. A
    character outside the vocabulary raises (the tokenizer has no unknown token).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(CHESS_VOCAB)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=None))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD_TOKEN,
                                   clean_up_tokenization_spaces=False, model_max_length=1 << 30)


class ChessTokenizer:
    """The chess vocabulary as a tokenizer object: ``encode(str) -> list[int]``, ``decode``.

    Plain numpy lookups (fast for whole files). Calling it (``tok(texts, padding=True,
    return_offsets_mapping=True)``) goes to the equivalent Hugging Face tokenizer
    (:func:`chess_tokenizer`, also returned by :meth:`hf`), for offsets and batching.
    """

    _hf = None

    vocab = CHESS_VOCAB
    vocab_size = CHESS_VOCAB_SIZE
    pad_token = PAD_TOKEN
    pad_token_id = CHESS_VOCAB.index(PAD_TOKEN)

    def encode(self, text: str) -> list[int]:
        return encode(text).tolist()

    def decode(self, ids: Iterable[int]) -> str:
        return decode(ids)

    def __len__(self) -> int:
        return CHESS_VOCAB_SIZE

    def hf(self):
        if ChessTokenizer._hf is None:
            ChessTokenizer._hf = chess_tokenizer()
        return ChessTokenizer._hf

    def __call__(self, *args, **kwargs):
        return self.hf()(*args, **kwargs)
