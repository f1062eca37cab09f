"""Training data: chess games and text corpora turned into token data directories.

``moelens data chess`` (:mod:`.chess.dataset`) and ``moelens data text`` (:mod:`.text`) write the
directory described in docs/interfaces.md; :class:`.tokens.TokenData` reads it back. Chess (vocabulary,
players, generation, import, blocks) is the :mod:`.chess` package. Concept labels live in ``concepts/`` (separate).
"""
