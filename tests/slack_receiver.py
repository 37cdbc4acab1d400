"""An HTTP server on loopback that answers like Slack's incoming webhooks and keeps what
it was sent, so tests can read the messages the real Slack client posted. As a black
hole it takes every post in and never answers (until it stops)."""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class SlackReceiver:
    def __init__(self, fail_first: int = 0, status: int = 503, black_hole: bool = False):
        self.messages: list[dict] = []
        self.attempts: list[float] = []
        self._fail_first = fail_first
        self._status = status
        self._black_hole = black_hole
        self._released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.attempts.append(time.monotonic())
                if receiver._black_hole:
                    receiver._released.wait()
                    self.close_connection = True
                    return
                if len(receiver.attempts) <= receiver._fail_first:
                    self.send_response(receiver._status)
                    self.end_headers()
                    self.wfile.write(b"service_unavailable")
                    return
                receiver.messages.append(json.loads(body or b"{}"))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/services/{secrets.token_hex(12)}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def texts(self) -> list[str]:
        return [message.get("text", "") for message in self.messages]

    def wait_for(self, needle: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for text in self.texts():
                if needle in text:
                    return text
            time.sleep(0.2)
        raise AssertionError(f"no Slack message containing {needle!r}; got {self.texts()}")
