"""A real OpenAI-compatible chat-completions server, in a thread, with scripted replies.

It speaks ``POST /v1/chat/completions`` over HTTP/1.1 (stdlib ``http.server``). Replies come
from a queue of scripted ones (status, headers, raw body, extra delay), then from a default
responder that answers moelens's prompts the way a judge that knows "animals" would: an
explanation about animals, 1 for every numbered text that mentions cat, dog or bird, and the
first text as the intruder. It records every request (payload and headers) and the largest
number of requests it had in flight at once; ``latency`` delays every reply.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANIMAL = re.compile(r"\b(cat|dog|bird)\b")


def smart_reply(payload: dict) -> str:
    user = payload["messages"][-1]["content"]
    if '{"answers"' in user:
        n = int(re.search(r"with (\d+) numbers", user).group(1))
        answers = []
        for i in range(1, n + 1):
            line = re.search(rf"^{i}\. (.*)$", user, re.M)
            answers.append(int(bool(line and ANIMAL.search(line.group(1)))))
        return json.dumps({"answers": answers})
    if '"intruder"' in user:
        return '{"intruder": 1}'
    return '{"explanation": "the animal words cat, dog and bird"}'


class ChatServer:
    def __init__(self, latency: float = 0.0, responder=smart_reply):
        self.latency = latency
        self.responder = responder
        self.script: deque = deque()
        self.requests: list[tuple[dict, dict]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def push(self, status: int = 200, body: str | None = None, headers: dict | None = None, delay: float = 0.0):
        """Script the next reply: a status, a raw body (default: the responder's answer), a delay."""
        self.script.append((status, body, headers or {}, delay))

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def count(self) -> int:
        return len(self.requests)

    def __enter__(self) -> ChatServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms stall

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                payload = json.loads(self.rfile.read(length) or b"{}")
                with owner._lock:
                    owner.requests.append((payload, dict(self.headers)))
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                    scripted = owner.script.popleft() if owner.script else None
                try:
                    status, body, headers, delay = scripted or (200, None, {}, 0.0)
                    time.sleep(owner.latency + delay)
                    if body is None:
                        content = owner.responder(payload)
                        body = json.dumps({"id": "x", "object": "chat.completion",
                                           "choices": [{"index": 0, "finish_reason": "stop",
                                                        "message": {"role": "assistant", "content": content}}],
                                           "usage": {"prompt_tokens": len(json.dumps(payload)) // 4,
                                                     "completion_tokens": len(content) // 4}})
                    data = body.encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    try:
                        self.wfile.write(data)
                    except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                        pass
                finally:
                    with owner._lock:
                        owner.in_flight -= 1

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client that hung up is no news
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def main() -> None:
    """Serve in a process of its own (the benchmark's endpoint): prints the base URL, then serves
    until killed."""
    import argparse
    import sys

    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.05)
    args = ap.parse_args()
    with ChatServer(latency=args.latency) as srv:
        print(srv.base_url, flush=True)
        sys.stdin.read()  # until the parent closes our stdin


if __name__ == "__main__":
    main()
