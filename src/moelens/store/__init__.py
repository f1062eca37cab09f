"""The activation store: a directory holding one capture (see :mod:`.format` for the layout).

Its own subsystem: capture writes stores and every analysis reads them, and no analysis imports
``moelens.capture``. Readers use :class:`ActivationStore` (``ActivationStore.open(path)``); capture
writes through :mod:`.writer` (one shard at a time), and its job module
(``moelens.capture.store_job``) claims, resumes and finalises shards. :func:`verify` checks a whole
store against its manifest (``moelens store verify``).
"""

from moelens.errors import StoreError
from moelens.store.format import FORMAT_VERSION, SEMANTICS, SPACES
from moelens.store.reader import ActivationStore
from moelens.store.verification import Problem, VerifyReport, verify

__all__ = ["FORMAT_VERSION", "SEMANTICS", "SPACES", "ActivationStore", "Problem", "StoreError", "VerifyReport",
           "verify"]
