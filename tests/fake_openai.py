"""A fake OpenAI-compatible chat-completions server on 127.0.0.1 for judge tests (no network, no key needed)."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer


class ChatHandler(BaseHTTPRequestHandler):
    """Subclasses implement ``reply(body) -> (status, choice)``; calls and Authorization headers are recorded."""

    calls = 0
    auth: list = []

    def reply(self, body: dict) -> tuple[int, dict | None]:
        raise NotImplementedError

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        cls.calls += 1
        cls.auth.append(self.headers.get("Authorization"))
        status, choice = self.reply(body)
        if status != 200:
            self.send_response(status)
            self.end_headers()
            return
        data = json.dumps({"choices": [choice]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


def logprob_choice(rating: int, chosen_logprob: float, other_logprob: float) -> dict:
    """A reply "<rating>" whose first token carries top-5 logprobs over the digits 1..5."""
    tops = [{"token": str(k), "logprob": chosen_logprob if k == rating else other_logprob} for k in range(1, 6)]
    return {"message": {"content": str(rating)}, "logprobs": {"content": [{"token": str(rating), "top_logprobs": tops}]}}


@contextmanager
def serve(handler: type[ChatHandler]):
    handler.calls, handler.auth = 0, []
    srv = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}/v1"
    finally:
        srv.shutdown()
