"""The activation store: a directory holding one capture (see ``store_format`` for the layout).

Readers use :class:`ActivationStore` (``ActivationStore.open(path)``); the capture pipeline writes
stores through ``store_writer`` (one shard at a time) and ``store_job`` (claim, resume, manifest).
"""

from moelens.capture.store_format import FORMAT_VERSION, SEMANTICS, SPACES
from moelens.capture.store_reader import ActivationStore
from moelens.errors import StoreError

__all__ = ["FORMAT_VERSION", "SEMANTICS", "SPACES", "ActivationStore", "StoreError"]
