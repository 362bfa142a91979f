"""Fixtures of the data-layer tests: the miniature datasets of :mod:`tests.data.archives` with
their expected counts, and a loopback HTTP server with Range support."""

from __future__ import annotations

import dataclasses
import http.server
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from dmlstudy.data import DATA_DIR_ENV, DATASETS
from tests.data.archives import MAKERS, TINY_COUNTS


@pytest.fixture(autouse=True)
def _no_data_dir_env(monkeypatch):
    """Tests pass data_dir explicitly; a user's $DMLSTUDY_DATA_DIR would override it."""
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)


@pytest.fixture
def tiny_counts(monkeypatch):
    """Make DATASETS[name] expect the miniature fixture's counts instead of the official ones."""

    def apply(name: str) -> None:
        spec = DATASETS[name]
        tiny = dataclasses.replace(spec, expected=TINY_COUNTS[name])
        monkeypatch.setitem(DATASETS, name, tiny)

    return apply


@pytest.fixture
def tiny_dataset(tmp_path, tiny_counts):
    """Factory: write the miniature ``name`` under tmp data dir, expect its counts; → data_dir."""

    def make(name: str) -> Path:
        tiny_counts(name)
        return MAKERS[name](tmp_path / "data")

    return make


class _Handler(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    honour_range = True
    cut_after: int | None = None  # send only this many body bytes, then drop the connection
    log: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self):
        rng = self.headers.get("Range")
        self.log.append((self.path, rng))
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = int(rng.split("=")[1].rstrip("-")) if rng and self.honour_range else 0
        if start >= len(data) and start > 0:
            self.send_error(416)
            return
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if self.cut_after is not None:
            self.wfile.write(data[start : start + self.cut_after])
            self.close_connection = True
            return
        self.wfile.write(data[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    """Loopback-only server: ``server.files[path] = bytes``; ``server.url(path)``; request log."""
    handler = type(
        "H", (_Handler,), {"files": {}, "log": [], "honour_range": True, "cut_after": None}
    )
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    srv.handler = handler
    srv.url = lambda path: f"http://127.0.0.1:{srv.server_address[1]}{path}"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def makers():
    """``{name: maker(data_dir) -> data_dir}`` writing each miniature dataset."""
    return MAKERS
