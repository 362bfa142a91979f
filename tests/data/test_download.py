"""Resumable md5-checked download against a loopback HTTP server (127.0.0.1 only)."""

from __future__ import annotations

import hashlib
import random

import pytest

from dmlstudy.data import ChecksumError
from dmlstudy.data.download import download_file, md5sum

# > one 1 MiB chunk, odd size; seeded so every run serves the same bytes
PAYLOAD = random.Random(0).randbytes(3 * 2**20 + 123)
MD5 = hashlib.md5(PAYLOAD).hexdigest()


def test_md5sum_matches_hashlib(tmp_path):
    (tmp_path / "f").write_bytes(PAYLOAD)
    assert md5sum(tmp_path / "f") == MD5


def test_fresh_download(http_server, tmp_path):
    http_server.handler.files["/a.zip"] = PAYLOAD
    dest = download_file(http_server.url("/a.zip"), tmp_path / "d" / "a.zip", MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "d" / "a.zip.part").exists()
    assert http_server.handler.log == [("/a.zip", None)]


def test_resume_after_truncated_part(http_server, tmp_path):
    http_server.handler.files["/a.zip"] = PAYLOAD
    part = tmp_path / "a.zip.part"
    part.write_bytes(PAYLOAD[:1_000_001])
    dest = download_file(http_server.url("/a.zip"), tmp_path / "a.zip", MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert http_server.handler.log == [("/a.zip", "bytes=1000001-")]
    assert not part.exists()


def test_server_ignoring_range_restarts_from_zero(http_server, tmp_path):
    http_server.handler.files["/a.zip"] = PAYLOAD
    http_server.handler.honour_range = False
    (tmp_path / "a.zip.part").write_bytes(b"garbage-prefix")
    dest = download_file(http_server.url("/a.zip"), tmp_path / "a.zip", MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_file_is_finished_without_refetch(http_server, tmp_path):
    http_server.handler.files["/a.zip"] = PAYLOAD
    (tmp_path / "a.zip.part").write_bytes(PAYLOAD)
    dest = download_file(http_server.url("/a.zip"), tmp_path / "a.zip", MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD  # server answered 416: nothing left to fetch


def test_checksum_mismatch_names_file_and_url_and_leaves_nothing(http_server, tmp_path):
    corrupt = PAYLOAD[:-1] + bytes([PAYLOAD[-1] ^ 0xFF])  # last byte flipped: always differs
    assert corrupt != PAYLOAD
    http_server.handler.files["/a.zip"] = corrupt
    url = http_server.url("/a.zip")
    with pytest.raises(ChecksumError) as err:
        download_file(url, tmp_path / "a.zip", MD5, progress=False)
    assert "a.zip" in str(err.value) and url in str(err.value) and MD5 in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_existing_final_file_is_trusted(http_server, tmp_path):
    (tmp_path / "a.zip").write_bytes(b"done")
    assert download_file(http_server.url("/a.zip"), tmp_path / "a.zip", MD5).read_bytes() == b"done"
    assert http_server.handler.log == []


def test_dropped_connection_keeps_the_part_and_resumes(http_server, tmp_path):
    """The server closes the connection mid-body (Content-Length unmet): http.client's read()
    returns b"" silently, so a short body must be detected by its length and reported as a
    resumable interruption — not md5-checked, called corrupt and deleted."""
    http_server.handler.files["/a.zip"] = PAYLOAD
    http_server.handler.cut_after = 1_500_000
    url = http_server.url("/a.zip")
    with pytest.raises(ConnectionError, match=r"1500000 of 3145851 bytes.*a\.zip\.part.*resume"):
        download_file(url, tmp_path / "a.zip", MD5, progress=False)
    assert (tmp_path / "a.zip.part").stat().st_size == 1_500_000
    http_server.handler.cut_after = None
    dest = download_file(url, tmp_path / "a.zip", MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert http_server.handler.log[-1] == ("/a.zip", "bytes=1500000-")


def test_unreachable_tells_an_answering_server_from_no_connection(http_server):
    """Any HTTP answer (404, 501 for HEAD…) means online; a refused connection is offline."""
    import socket

    from dmlstudy.data.download import unreachable

    assert unreachable(http_server.url("/absent.zip")) is None
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    why = unreachable(f"http://127.0.0.1:{port}/a.zip", timeout=2)
    assert why is not None and f"cannot reach 127.0.0.1:{port}" in why
