"""Any OpenAI-compatible chat-completions endpoint (hosted APIs, vLLM, llama.cpp, Ollama).

Async (httpx), with at most ``concurrency`` requests in flight, one connection per slot. A 429 or a
5xx answer is retried after the delay its ``Retry-After`` header asks for (seconds or an HTTP
date), else after an exponential back-off, both capped at ``max_backoff``; a timeout is retried the
same way. After ``max_retries`` retries the request is a failure (recorded, never a guess). An
endpoint that cannot be reached at all, or refuses the key or the model (other 4xx), stops the run
with one :class:`EndpointError` line: nothing else could work.

The API key is read from the environment variable the settings name, at request time; it is
sent in the Authorization header and written nowhere.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import time
from dataclasses import dataclass
from typing import Any

from moelens.analysis.autointerp.clients.base import Completion, EndpointError, ResponseCache, Usage


@dataclass
class OpenAISettings:
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 60.0
    max_retries: int = 4
    backoff: float = 1.0
    max_backoff: float = 60.0
    concurrency: int = 16
    temperature: float = 0.0
    max_tokens: int = 300
    price_in: float = 0.0
    price_out: float = 0.0


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class OpenAIClient:
    backend = "openai"

    def __init__(self, settings: OpenAISettings, cache: ResponseCache, usage: Usage | None = None):
        self.s = settings
        self.model = settings.model
        self.cache = cache
        self.usage = usage or Usage()
        self._slots: asyncio.Queue | None = None
        self._all: list = []

    def _open(self) -> asyncio.Queue:
        """``concurrency`` connections, each an httpx client of its own, lent out one request at
        a time: a request waits for a free one, which is the concurrency limit. (One shared
        pool of many connections spends more CPU choosing a connection than sending.)"""
        if self._slots is None:
            import httpx

            self._slots = asyncio.Queue()
            for _ in range(max(self.s.concurrency, 1)):
                one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
                client = httpx.AsyncClient(timeout=self.s.timeout, limits=one)
                self._all.append(client)
                self._slots.put_nowait(client)
        return self._slots

    async def close(self) -> None:
        for client in self._all:
            await client.aclose()
        self._all, self._slots = [], None

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.s.api_key_env, "") if self.s.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    async def chat(self, messages: list[dict], max_tokens: int | None = None, json_mode: bool = True) -> Completion:
        payload: dict[str, Any] = {"model": self.s.model, "messages": messages,
                                   "temperature": self.s.temperature,
                                   "max_tokens": max_tokens or self.s.max_tokens}
        if json_mode:
            payload["response_format"] = {"type": "json_object"}
        key = self.cache.key(self.backend, self.s.model, payload)
        hit = self.cache.get(key)
        if hit is not None:
            done = Completion(hit["text"], None, hit.get("prompt_tokens", 0), hit.get("completion_tokens", 0),
                              cached=True)
            self.usage.add(done)
            return done
        done = await self._request(payload)
        self.usage.add(done, self.s.price_in, self.s.price_out)
        if done.ok:
            self.cache.put(key, {"text": done.text, "prompt_tokens": done.prompt_tokens,
                                 "completion_tokens": done.completion_tokens})
        return done

    async def _request(self, payload: dict[str, Any]) -> Completion:
        import httpx

        slots = self._open()
        url = self.s.base_url.rstrip("/") + "/chat/completions"
        last = ""
        for attempt in range(self.s.max_retries + 1):
            wait = None
            http = await slots.get()
            try:
                try:
                    resp = await http.post(url, json=payload, headers=self._headers())
                except httpx.TimeoutException:
                    last = f"timed out after {self.s.timeout:g} s"
                except httpx.TransportError as exc:
                    last = f"cannot connect ({type(exc).__name__})"
                    if attempt == self.s.max_retries:
                        raise EndpointError(f"the LLM endpoint {self.s.base_url} is unreachable after "
                                            f"{attempt + 1} tries ({last}); start the server or fix "
                                            "--llm.base_url") from None
                else:
                    if resp.status_code == 200:
                        return self._parse(resp)
                    if resp.status_code == 429 or resp.status_code >= 500:
                        last = f"HTTP {resp.status_code}"
                        wait = retry_after(resp.headers.get("Retry-After"))
                    else:
                        raise EndpointError(
                            f"the LLM endpoint {self.s.base_url} refused the request (HTTP {resp.status_code}: "
                            f"{' '.join(resp.text.split())[:160]}); check --llm.model and the key in "
                            f"${self.s.api_key_env}")
            finally:
                slots.put_nowait(http)  # the connection is free again (also while we back off)
            if attempt < self.s.max_retries:
                self.usage.retries += 1
                delay = wait if wait is not None else self.s.backoff * 2 ** attempt
                await asyncio.sleep(min(delay, self.s.max_backoff))
        return Completion(None, failure=f"gave up after {self.s.max_retries + 1} tries: {last}")

    @staticmethod
    def _parse(resp) -> Completion:
        try:
            body = resp.json()
            text = body["choices"][0]["message"]["content"]
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return Completion(None, failure=f"malformed response ({type(exc).__name__})")
        usage = body.get("usage") or {}
        return Completion(text, None, int(usage.get("prompt_tokens") or 0),
                          int(usage.get("completion_tokens") or 0))
