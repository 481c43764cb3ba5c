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

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    cdn.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield cdn
    finally:
        server.shutdown()
        server.server_close()
