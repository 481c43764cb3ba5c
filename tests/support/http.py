"""A real HTTP server on 127.0.0.1 standing in for a CDN: serves files, errors and slow responses."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    content_type: str = "image/jpeg"
    delay_s: float = 0.0
    send_length: bool = True  # False: no Content-Length, the body is read until the connection closes
    headers: dict[str, str] = field(default_factory=dict)
    # The first ``fail_first`` requests answer ``fail_status`` (with ``fail_headers``), then the route.
    fail_first: int = 0
    fail_status: int = 503
    fail_headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeCdn:
    base_url: str
    routes: dict[str, Route | list[Route]] = field(default_factory=dict)  # a list: one per request, last repeats
    hits: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def add_file(self, path: str, file: Path, content_type: str = "image/jpeg", delay_s: float = 0.0) -> str:
        self.routes["/" + path.lstrip("/")] = Route(200, file.read_bytes(), content_type, delay_s)
        return self.url(path)


@contextmanager
def serve_cdn() -> Iterator[FakeCdn]:
    """Start a threaded server on an ephemeral loopback port; unknown paths answer 404."""
    cdn = FakeCdn(base_url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            cdn.hits.append(self.path)
            route = cdn.routes.get(self.path, Route(404, b"<html>not found</html>", "text/html"))
            if isinstance(route, list):
                route = route.pop(0) if len(route) > 1 else route[0]
            if route.fail_first and cdn.hits.count(self.path) <= route.fail_first:
                route = Route(route.fail_status, b"slow down", "text/plain", headers=route.fail_headers)
            if route.delay_s:
                time.sleep(route.delay_s)
            self.send_response(route.status)
            self.send_header("Content-Type", route.content_type)
            if route.send_length:
                self.send_header("Content-Length", str(len(route.body)))
            for name, value in route.headers.items():
                self.send_header(name, value)
            self.end_headers()
            try:
                self.wfile.write(route.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client hung up on purpose (size cap or timeout under test)

        def log_message(self, *args: object) -> None:
            pass

    with serve_handler(Handler) as base_url:
        cdn.base_url = base_url
        yield cdn


class LoopbackHandler(BaseHTTPRequestHandler):
    """Base for fake APIs: keep-alive, one buffered write per answer and no Nagle (so an answer takes
    ~1 ms, not a 40 ms delayed ACK), no access log."""

    protocol_version = "HTTP/1.1"
    wbufsize = -1
    disable_nagle_algorithm = True

    def answer(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and hung up

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serve_handler(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a threaded server on an ephemeral loopback port; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
