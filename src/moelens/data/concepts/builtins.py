"""Import every built-in concept group once, in the paper's order, so they register.

The import order is the registration order (pos, latex, code, text, then chess), which is the
order ``list_concepts`` and ``groups`` report; keep it when sorting imports.
"""
# isort: skip_file

from moelens.data.concepts import pos  # noqa: F401  (16 POS tags)
from moelens.data.concepts import latex  # noqa: F401  (12 LaTeX)
from moelens.data.concepts import code  # noqa: F401  (20 code)
from moelens.data.concepts import text  # noqa: F401  (10 general text)
from moelens.data.concepts import chess  # noqa: F401  (PGN notation; not in the paper)

PAPER_GROUPS = ("pos", "latex", "code", "text")
"""The groups of the paper's 58 concepts (16 + 12 + 20 + 10)."""
