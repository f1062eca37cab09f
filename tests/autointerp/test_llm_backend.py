"""The OpenAI-compatible client against a real local HTTP server with scripted replies."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from ai_helpers import run, unit_examples
from ai_chat_server import ChatServer

from moelens.analysis.autointerp.clients.base import EndpointError, ResponseCache
from moelens.analysis.autointerp.clients.openai_compat import OpenAIClient, OpenAISettings
from moelens.analysis.autointerp.explainers.base import Explanation
from moelens.analysis.autointerp.explainers.llm import LLMExplainer
from moelens.analysis.autointerp.scorers.detection import Detection
from moelens.analysis.autointerp.scorers.judges import ChatJudge
from moelens.analysis.autointerp.units import Unit

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def animal_examples(planted_store):
    unit = Unit(1, "ffn", -1, 0)
    return unit_examples(planted_store, [unit], [Unit(1, "ffn", -1, i) for i in range(13)],
                         n_explain=10, n_test=10, n_negative=10)[unit]


def _client(srv, tmp_path, **kw) -> OpenAIClient:
    settings = OpenAISettings(base_url=srv.base_url, model="test-model", timeout=5.0, backoff=0.01,
                              max_backoff=5.0, **kw)
    return OpenAIClient(settings, ResponseCache(tmp_path / "cache"))


async def _closing(client, coro):
    try:
        return await coro
    finally:
        await client.close()


def test_json_answers_are_parsed(tmp_path, animal_examples):
    with ChatServer() as srv:
        client = _client(srv, tmp_path)

        async def go():
            expl = await LLMExplainer(client, expert_level=False).explain(animal_examples)
            res = await Detection().score(animal_examples, expl, ChatJudge(client, batch=5), np.random.default_rng(0))
            return expl, res

        expl, res = run(_closing(client, go()))
        assert expl.text == "the animal words cat, dog and bird" and expl.failure is None
        assert res.metrics["answered"] == 20 and res.metrics["balanced_accuracy"] == 1.0
        assert srv.count == 1 + 4  # one explanation, 20 windows in batches of 5
        payload, headers = srv.requests[0]
        assert payload["response_format"] == {"type": "json_object"} and payload["model"] == "test-model"


def test_429_waits_for_retry_after_then_succeeds(tmp_path):
    with ChatServer() as srv:
        srv.push(429, body='{"error": "slow down"}', headers={"Retry-After": "1"})
        client = _client(srv, tmp_path)
        t0 = time.perf_counter()
        done = run(_closing(client, client.chat(MESSAGES)))
        assert done.ok and srv.count == 2
        assert time.perf_counter() - t0 >= 0.9  # the header's second, not the 0.01 s back-off
        assert client.usage.retries == 1 and client.usage.failures == 0


def test_malformed_replies_are_failures_never_answers(tmp_path, animal_examples):
    with ChatServer(responder=lambda payload: "I would say yes to most of them") as srv:
        srv.push(200, body="<html>not json</html>")
        client = _client(srv, tmp_path)

        async def go():
            done = await client.chat(MESSAGES)
            expl = await LLMExplainer(client, expert_level=True).explain(animal_examples)
            res = await Detection().score(animal_examples, Explanation("animal words"), ChatJudge(client),
                                          np.random.default_rng(0))
            return done, expl, res

        done, expl, res = run(_closing(client, go()))
        assert done.text is None and "malformed" in done.failure
        assert expl.text is None and expl.failure and expl.raw == "I would say yes to most of them"
        m = res.metrics
        assert (m["answered"], m["failures"], m["balanced_accuracy"]) == (0, 20, None)
        assert all(r["prediction"] is None and r["failure"] for r in res.records)


def test_timeouts_are_retried_a_bounded_number_of_times(tmp_path):
    with ChatServer() as srv:
        srv.push(delay=1.0)
        srv.push(delay=1.0)
        client = _client(srv, tmp_path, max_retries=1)
        client.s.timeout = 0.3
        t0 = time.perf_counter()
        done = run(_closing(client, client.chat(MESSAGES)))
        assert done.text is None and "timed out" in done.failure
        assert srv.count == 2 and time.perf_counter() - t0 < 2.0
        assert client.usage.failures == 1


def test_a_warm_cache_sends_nothing(tmp_path):
    with ChatServer() as srv:
        first = _client(srv, tmp_path)
        a = run(_closing(first, first.chat(MESSAGES)))
        second = _client(srv, tmp_path)
        b = run(_closing(second, second.chat(MESSAGES)))
        assert srv.count == 1 and b.cached and b.text == a.text
        assert second.usage.requests == 0 and second.usage.cached == 1
        c = run(_closing(second, second.chat(MESSAGES, max_tokens=7)))  # other parameters: asked again
        assert srv.count == 2 and not c.cached


def test_concurrency_limit_is_respected(tmp_path):
    with ChatServer(latency=0.15) as srv:
        client = _client(srv, tmp_path, concurrency=3)

        async def go():
            return await asyncio.gather(*(client.chat([{"role": "user", "content": f"q{i}"}]) for i in range(12)))

        t0 = time.perf_counter()
        done = run(_closing(client, go()))
        assert all(d.ok for d in done) and srv.count == 12
        assert srv.max_in_flight == 3
        assert time.perf_counter() - t0 >= 4 * 0.15 * 0.9


def test_a_refused_key_stops_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-abc")
    with ChatServer() as srv:
        srv.push(401, body='{"error": "bad key"}')
        client = _client(srv, tmp_path, api_key_env="MY_KEY")
        with pytest.raises(EndpointError, match="MY_KEY"):
            run(_closing(client, client.chat(MESSAGES)))
        assert srv.requests[0][1]["Authorization"] == "Bearer sk-abc"
