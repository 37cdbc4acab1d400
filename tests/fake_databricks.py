"""A Databricks workspace on loopback, for the export's tests: the Files API and the SQL
Statement Execution API, as far as the export uses them, and a record of every request.

It checks the bearer token, keeps every uploaded file, and runs the export's statement the
way the warehouse would for this purpose: `CREATE OR REPLACE TABLE IDENTIFIER(:target_table)`
from `read_files('<volume path>', ...)` makes the table the rows of that file, replacing it.

Faults are queued per method and served first, in order, each to any request or only to
one table's (its upload, or its statement): an HTTP status (with an API-style error body,
which may echo the request's headers) or a delay before the normal answer (longer than the
client's timeout, it is a timeout). Statements follow a script of states, one per answer:
the POST answers the first, each GET the next (the last one repeats); a FAILED state
carries an error. As a black hole, it takes every request in and never answers, until it
stops. It records when each request arrived and when its answer went out.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

FILES_PREFIX = "/api/2.0/fs/files"
STATEMENTS = "/api/2.0/sql/statements"
READ_FILES = re.compile(r"read_files\('([^']*)'")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def path_with_query(self) -> str:
        return self.path + (f"?{urlencode(self.query, doseq=True)}" if self.query else "")


@dataclass
class Fault:
    status: int | None = None  # answer with this status (and an error body)
    delay: float = 0.0  # then wait this long before answering
    echo_headers: bool = False  # the error body repeats the request's headers, token included
    table: str | None = None  # only for this table's requests

    def serves(self, request: RecordedRequest) -> bool:
        return (
            self.table is None or self.table in request.path or self.table.encode() in request.body
        )


@dataclass
class Statement:
    statement_id: str
    target: str
    source: str
    states: deque[str]
    error: dict[str, str] | None
    state: str = "PENDING"


@dataclass
class FakeDatabricks:
    token: str
    requests: list[RecordedRequest] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    tables: dict[str, pa.Table] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)
    answered: list[tuple[RecordedRequest, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._black_hole = False
        self._released = threading.Event()
        self._faults: dict[str, deque[Fault]] = {}
        self._script: list[str] = ["SUCCEEDED"]
        self._error: dict[str, str] | None = None
        self._statements: dict[str, Statement] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    # --- test controls ---------------------------------------------------------------

    def fail(
        self,
        method: str,
        status: int,
        times: int = 1,
        echo_headers: bool = False,
        table: str | None = None,
    ) -> None:
        faults = [Fault(status, echo_headers=echo_headers, table=table) for _ in range(times)]
        self._queue(method, faults)

    def delay(self, method: str, seconds: float, times: int = 1, table: str | None = None) -> None:
        self._queue(method, [Fault(delay=seconds, table=table) for _ in range(times)])

    def black_hole(self) -> None:
        """From now on, take every request in and never answer it (until the fake stops)."""
        self._black_hole = True

    def answered_at(self, request: RecordedRequest) -> float:
        return next(at for answered, at in self.answered if answered is request)

    def script_statements(self, states: list[str], error: dict[str, str] | None = None) -> None:
        """The states every following statement goes through, one per answer."""
        self._script, self._error = list(states), error

    def requests_to(self, method: str, path_start: str = "") -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_start)]

    # --- the endpoints ---------------------------------------------------------------

    def _queue(self, method: str, faults: list[Fault]) -> None:
        with self._lock:
            self._faults.setdefault(method, deque()).extend(faults)

    def handle(self, request: RecordedRequest) -> tuple[int, dict[str, Any] | None] | None:
        """The answer, or None for no answer at all (a black hole)."""
        with self._lock:
            self.requests.append(request)
            fault = self._next_fault(request)
        if self._black_hole:
            self._released.wait()
            return None
        if fault and fault.delay:
            time.sleep(fault.delay)
        if fault and fault.status:
            body = _error_body(fault.status)
            if fault.echo_headers:
                # The Authorization header first: error texts are cut short, and the token
                # must be in what is kept for the test to show it removed.
                sent = request.headers.get("authorization")
                body["message"] += f"; you sent Authorization: {sent}; headers: {request.headers}"
            return fault.status, body
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"error_code": "UNAUTHENTICATED", "message": "bad token"}
        with self._lock:
            return self._route(request)

    def _next_fault(self, request: RecordedRequest) -> Fault | None:
        queued = self._faults.get(request.method) or deque()
        fault = next((fault for fault in queued if fault.serves(request)), None)
        if fault is not None:
            queued.remove(fault)
        return fault

    def _route(self, request: RecordedRequest) -> tuple[int, dict[str, Any] | None]:
        if request.method == "PUT" and request.path.startswith(FILES_PREFIX + "/Volumes/"):
            path = request.path[len(FILES_PREFIX) :]
            if path in self.files and request.query.get("overwrite") != ["true"]:
                return 409, {"error_code": "ALREADY_EXISTS", "message": path}
            self.files[path] = request.body
            return 204, None
        if request.method == "POST" and request.path == STATEMENTS:
            return 200, self._start(request.json())
        match = re.fullmatch(STATEMENTS + r"/([^/]+)(/cancel)?", request.path)
        if match and match.group(1) in self._statements:
            statement = self._statements[match.group(1)]
            if match.group(2) and request.method == "POST":
                self.cancelled.append(statement.statement_id)
                statement.state = "CANCELED"
                return 200, {}
            if request.method == "GET":
                return 200, self._advance(statement)
        return 404, {"error_code": "NOT_FOUND", "message": request.path}

    def _start(self, body: dict[str, Any]) -> dict[str, Any]:
        parameters = {p["name"]: p["value"] for p in body.get("parameters", [])}
        source = READ_FILES.search(body["statement"])
        statement = Statement(
            statement_id=f"stmt-{len(self._statements) + 1:04d}",
            target=parameters.get("target_table", ""),
            source=source.group(1) if source else "",
            states=deque(self._script),
            error=self._error,
        )
        self._statements[statement.statement_id] = statement
        return self._advance(statement)

    def _advance(self, statement: Statement) -> dict[str, Any]:
        if statement.state != "CANCELED":
            statement.state = (
                statement.states.popleft() if len(statement.states) > 1 else statement.states[0]
            )
        answer: dict[str, Any] = {
            "statement_id": statement.statement_id,
            "status": {"state": statement.state},
        }
        if statement.state == "FAILED":
            answer["status"]["error"] = statement.error or {
                "error_code": "BAD_REQUEST",
                "message": "[PARSE_SYNTAX_ERROR]",
            }
        if statement.state == "SUCCEEDED":
            rows = self._run(statement)
            answer["manifest"] = {
                "format": "JSON_ARRAY",
                "schema": {
                    "column_count": 2,
                    "columns": [
                        {"name": "num_affected_rows", "type_name": "LONG", "position": 0},
                        {"name": "num_inserted_rows", "type_name": "LONG", "position": 1},
                    ],
                },
                "total_row_count": 1,
            }
            answer["result"] = {"row_count": 1, "data_array": [[str(rows), str(rows)]]}
        return answer

    def _run(self, statement: Statement) -> int:
        """CREATE OR REPLACE TABLE: the target becomes the file's rows, whatever it held."""
        table = pq.read_table(io.BytesIO(self.files[statement.source]))
        self.tables[statement.target] = table
        return table.num_rows


def _error_body(status: int) -> dict[str, str]:
    code = {429: "RESOURCE_EXHAUSTED", 400: "INVALID_PARAMETER_VALUE"}.get(status, "UNAVAILABLE")
    return {"error_code": code, "message": f"injected {status}"}


def _handler_for(fake: FakeDatabricks) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def do_PUT(self) -> None:
            self._serve()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            request = RecordedRequest(
                method=self.command,
                path=unquote(url.path),
                query=parse_qs(url.query),
                headers={name.lower(): value for name, value in self.headers.items()},
                body=body,
                at=time.monotonic(),
            )
            answer = fake.handle(request)
            if answer is None:
                self.close_connection = True
                return
            status, payload = answer
            data = json.dumps(payload).encode() if payload is not None else b""
            try:
                self.send_response(status)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout test)
            with fake._lock:
                fake.answered.append((request, time.monotonic()))

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
