"""Silencing transformers' own progress bars while moelens loads or saves a model.

moelens draws its own progress bars, and a user error found after loading must still be the
only line on stderr; transformers' "Loading weights" and shard-writing bars would break both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_hf_progress() -> Iterator[None]:
    """Turn transformers' progress bars off within the block, restoring the previous setting."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()
