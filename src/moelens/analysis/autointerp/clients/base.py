"""What the clients share: a completion, the on-disk response cache, token and cost accounting.

The cache keys a response by (backend, model, prompt, parameters), hashed; each entry is one
JSON file written atomically (temp name + rename), so an interrupted run never leaves a half entry, and a rerun with
a warm cache sends no request at all and reads back exactly the same responses. Failed requests
(timeouts, malformed replies) are not cached: a rerun asks again. No credential is part of a key
or an entry.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moelens.errors import MoelensError
from moelens.rundir import atomic_path


class EndpointError(MoelensError):
    """An LLM endpoint cannot be used at all (unreachable, refuses the key or the model)."""


@dataclass
class Completion:
    text: str | None
    failure: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    """backend-specific results, e.g. probabilities of answer tokens"""

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass
class Usage:
    """Requests sent, answered from the cache and failed; tokens; cost in the configured currency."""

    requests: int = 0
    cached: int = 0
    failures: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    def add(self, c: Completion, price_in: float = 0.0, price_out: float = 0.0) -> None:
        if c.cached:
            self.cached += 1
            return
        self.requests += 1
        self.failures += c.failure is not None
        self.prompt_tokens += c.prompt_tokens
        self.completion_tokens += c.completion_tokens
        self.cost += (c.prompt_tokens * price_in + c.completion_tokens * price_out) / 1e6

    def merge(self, other: Usage) -> None:
        for k in ("requests", "cached", "failures", "retries", "prompt_tokens", "completion_tokens", "cost"):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def to_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "cached": self.cached, "failures": self.failures,
                "retries": self.retries, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "cost": round(self.cost, 6)}


class ResponseCache:
    """Responses on disk under ``root`` (no cache when ``root`` is None)."""

    def __init__(self, root: Path | None):
        self.root = Path(root) if root is not None else None

    @staticmethod
    def key(backend: str, model: str, payload: dict[str, Any]) -> str:
        blob = json.dumps({"backend": backend, "model": model, "payload": payload}, sort_keys=True,
                          ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        if self.root is None:
            return None
        path = self._path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Write one entry (temp name + rename, so never half an entry). Not fsynced: an entry
        lost to a power cut is only asked again, and thousands of fsyncs would cost more than
        the requests they save."""
        if self.root is None:
            return
        path = self._path(key)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
