"""Training data: chess games and text corpora turned into token data directories.

``moelens data chess`` (:mod:`.chess_dataset`) and ``moelens data text`` (:mod:`.text`) write the
directory described in docs/interfaces.md; :class:`.tokens.TokenData` reads it back. The chess
vocabulary and tokenizers live in :mod:`.chess`. Concept labels live in ``concepts/`` (separate).
"""
