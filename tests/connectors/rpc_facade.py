"""A small JSON-RPC-over-HTTP server on 127.0.0.1 for connector tests: it answers each method
by calling a Python function of a facade over a real engine (libbitcoinkernel, LiteSVM). One
lock serialises every engine access, the test's own (mining, advancing slots) included."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any


class RpcFault(Exception):
    """A JSON-RPC error object the facade answers with (code and message as the node's)."""

    def __init__(self, code: int, message: str, http_status: int = 500) -> None:
        super().__init__(message)
        self.code, self.message, self.http_status = code, message, http_status


class RpcServer:
    """Serves `methods` at http://127.0.0.1:<port>/; `auth` (user, password) is demanded if set."""

    def __init__(
        self,
        methods: dict[str, Callable[..., Any]],
        *,
        auth: tuple[str, str] | None = None,
        error_status: int = 500,
    ) -> None:
        self.methods = methods
        self.lock = threading.Lock()
        expected = (
            "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode() if auth else None
        )
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                if expected and self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, reply = 200, {"id": request.get("id"), "result": None, "error": None}
                fn = server.methods.get(request["method"])
                try:
                    if fn is None:
                        raise RpcFault(-32601, "Method not found", 404)
                    with server.lock:
                        reply["result"] = fn(*request.get("params", []))
                except RpcFault as fault:
                    status = fault.http_status if error_status == 500 else error_status
                    reply["error"] = {"code": fault.code, "message": fault.message}
                if request.get("jsonrpc") == "2.0":
                    reply["jsonrpc"] = "2.0"
                    reply.pop("error" if reply["error"] is None else "result")
                body = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> RpcServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @contextmanager
    def engine(self) -> Iterator[None]:
        """Hold the engine lock (for the test's direct engine calls)."""
        with self.lock:
            yield
