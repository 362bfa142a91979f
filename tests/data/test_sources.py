"""Locating files: data dir, env var, earlier downloads, downloads, offline/manual errors."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import socket
import tarfile
import zipfile
from pathlib import Path

import pytest

from dmlstudy.data import (
    DATA_DIR_ENV,
    DATASETS,
    ChecksumError,
    DatasetLayoutError,
    DatasetNotFoundError,
    load_index,
    resolve_data_dir,
)
from dmlstudy.data.sources import RemoteFile, ZipReader, extract_once, locate_files


def test_resolve_data_dir_env_overrides_argument(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    with pytest.raises(ValueError, match=DATA_DIR_ENV):
        resolve_data_dir(None)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "env"
    assert DATA_DIR_ENV == "DMLSTUDY_DATA_DIR"


def test_load_index_reads_env_data_dir(monkeypatch, tmp_path, tiny_dataset):
    data_dir = tiny_dataset("omniglot")
    monkeypatch.setenv(DATA_DIR_ENV, str(data_dir))
    index = load_index("omniglot", tmp_path / "nowhere", work_dir=tmp_path / "w")
    assert len(index) == 15


def _closed_port_url(name: str) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"  # nothing listens there: like being offline


def _point_at(monkeypatch, name: str, urls: dict[str, tuple[str, str]]) -> None:
    spec = DATASETS[name]
    files = tuple(RemoteFile(f.filename, *urls[f.filename]) for f in spec.files)
    monkeypatch.setitem(DATASETS, name, dataclasses.replace(spec, files=files))


def test_offline_without_local_copy_gives_one_clear_error(monkeypatch, tmp_path):
    url = _closed_port_url("images_background.zip")
    _point_at(
        monkeypatch,
        "omniglot",
        {"images_background.zip": (url, "0" * 32), "images_evaluation.zip": (url, "0" * 32)},
    )
    with pytest.raises(DatasetNotFoundError) as err:
        load_index("omniglot", tmp_path / "data", work_dir=tmp_path / "w")
    msg = str(err.value)
    assert url in msg and "images_background.zip" in msg
    assert str(tmp_path / "data" / "omniglot" / "images_background.zip") in msg
    assert not (tmp_path / "w" / "downloads" / "omniglot" / "images_background.zip").exists()


def test_no_download_flag_and_manual_source(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="allow downloading it from https://raw"):
        load_index("omniglot", tmp_path, work_dir=tmp_path / "w", download=False)
    with pytest.raises(DatasetNotFoundError, match="download it manually from https://drive"):
        load_index("inshop", tmp_path, work_dir=tmp_path / "w")


def test_download_then_reuse(monkeypatch, tmp_path, http_server, makers, tiny_counts):
    src = makers["omniglot"](tmp_path / "upstream") / "omniglot"
    urls = {}
    for f in ("images_background.zip", "images_evaluation.zip"):
        data = (src / f).read_bytes()
        http_server.handler.files["/" + f] = data
        urls[f] = (http_server.url("/" + f), hashlib.md5(data).hexdigest())
    _point_at(monkeypatch, "omniglot", urls)
    tiny_counts("omniglot")
    work = tmp_path / "w"
    index = load_index("omniglot", tmp_path / "empty_data_dir", work_dir=work)
    assert len(index) == 15
    assert (work / "downloads" / "omniglot" / "images_evaluation.zip").is_file()
    n_requests = len(http_server.handler.log)
    assert n_requests == 2
    load_index("omniglot", tmp_path / "empty_data_dir", work_dir=work)
    assert len(http_server.handler.log) == n_requests  # second call uses the verified download


def test_download_with_wrong_checksum_fails_naming_the_file(monkeypatch, tmp_path, http_server):
    http_server.handler.files["/cars_annos.mat"] = b"not the file"
    http_server.handler.files["/car_ims.tgz"] = b"x"
    _point_at(
        monkeypatch,
        "cars196",
        {
            "car_ims.tgz": (http_server.url("/car_ims.tgz"), hashlib.md5(b"x").hexdigest()),
            "cars_annos.mat": (http_server.url("/cars_annos.mat"), "0" * 32),
        },
    )
    with pytest.raises(ChecksumError, match=r"cars_annos.mat"):
        load_index("cars196", tmp_path / "data", work_dir=tmp_path / "w")


def test_local_copy_wins_over_download(monkeypatch, tmp_path, tiny_dataset):
    data_dir = tiny_dataset("sop")
    url = _closed_port_url("Stanford_Online_Products.zip")
    _point_at(monkeypatch, "sop", {"Stanford_Online_Products.zip": (url, "0" * 32)})
    spec = DATASETS["sop"]
    found = locate_files(spec, data_dir, tmp_path / "w")
    assert found == {
        "Stanford_Online_Products.zip": data_dir / "sop" / "Stanford_Online_Products.zip"
    }


def test_extract_once_is_atomic_and_cached(tmp_path, makers):
    data_dir = makers["cub200"](tmp_path / "d")
    archive = data_dir / "cub200" / "CUB_200_2011.tgz"
    dest = extract_once(archive, tmp_path / "x" / "cub200")
    assert (dest / "CUB_200_2011" / "images.txt").is_file()
    (dest / "CUB_200_2011" / "images.txt").write_text("touched")
    extract_once(archive, dest)  # marker present: not extracted again
    assert (dest / "CUB_200_2011" / "images.txt").read_text() == "touched"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["cub200"]


def test_extract_corrupt_tgz_names_file(tmp_path):
    bad = tmp_path / "car_ims.tgz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(Exception, match=r"car_ims.tgz"):
        extract_once(bad, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_zip_reader_routes_and_reports_missing(tmp_path, makers):
    d = makers["omniglot"](tmp_path) / "omniglot"
    r = ZipReader({"images_background": d / "images_background.zip"})
    assert r.read("images_background/Latin/character01/0001_01.png")[:4] == b"\x89PNG"
    with pytest.raises(Exception, match="no member"):
        r.read("images_background/Latin/character09/x.png")
    with pytest.raises(Exception, match="no archive holds"):
        r.read("images_evaluation/x.png")
    assert isinstance(Path(r.archive_for("images_background/a")), Path)


@pytest.mark.parametrize(
    "name,archive", [("omniglot", "images_background.zip"), ("sop", "Stanford_Online_Products.zip")]
)
def test_truncated_zip_in_data_dir_names_the_file(name, archive, tiny_dataset, tmp_path):
    """A local copy that is not a complete zip (interrupted copy) gets a DatasetLayoutError naming
    the file and the fix, not zipfile's bare 'File is not a zip file'."""
    data_dir = tiny_dataset(name)
    path = data_dir / name / archive
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DatasetLayoutError, match=f"{archive}.*not a readable zip.*replace"):
        load_index(name, data_dir, work_dir=tmp_path / "w")


def test_corrupt_zip_member_names_the_archive(tmp_path, makers):
    d = makers["omniglot"](tmp_path) / "omniglot"
    path = d / "images_background.zip"
    member = "images_background/Latin/character01/0001_01.png"
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        offset = z.getinfo(member).header_offset
    at = data.index(b"\x89PNG", offset)  # members are stored uncompressed
    data[at + 20] ^= 0xFF  # flip a byte of the member: its CRC check fails on read
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetLayoutError, match=r"images_background.zip.*0001_01.png"):
        ZipReader({"images_background": path}).read(member)


def test_replaced_tgz_is_extracted_again(tmp_path):
    """extract_once must notice that the archive behind the marker changed (same file name,
    e.g. a wrong archive replaced by the official one): a stale extraction would keep failing
    the count check after the user followed the error's advice."""
    archive = tmp_path / "a.tgz"
    for content in (b"old", b"new content"):
        with tarfile.open(archive, "w:gz") as tar:
            info = tarfile.TarInfo("x/f.txt")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        out = extract_once(archive, tmp_path / "ex")
        assert (out / "x" / "f.txt").read_bytes() == content


def test_error_lists_every_missing_file_at_once(tmp_path):
    """In-Shop (manual download) with nothing in place: ONE error names both files, where each
    goes and where each comes from, instead of one file per attempt."""
    with pytest.raises(DatasetNotFoundError) as err:
        load_index("inshop", tmp_path / "data", work_dir=tmp_path / "w")
    msg = str(err.value)
    for f in ("img.zip", "list_eval_partition.txt"):
        assert str(tmp_path / "data" / "inshop" / f) in msg
    assert "Eval/list_eval_partition.txt" in msg and "Img/img.zip" in msg


@pytest.mark.parametrize(
    "kind,name,target",
    [("file", "../escape.txt", ""), ("symlink", "x/link", "/etc/passwd"), ("link", "x/h", "../o")],
    ids=["dotdot-member", "absolute-symlink", "hardlink-out"],
)
def test_tar_members_leaving_the_folder_are_refused(tmp_path, kind, name, target):
    """extract_once uses tarfile's "data" filter: a member that would land outside the
    extraction folder (``..``, a link out of it) is refused, naming the archive, and nothing is
    left behind (no partial tree, no tmp folder, no file outside). (The filter strips a leading
    ``/`` from absolute member names, so those land inside.)"""
    archive = tmp_path / "in" / "evil.tgz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        ok = tarfile.TarInfo("x/ok.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        info = tarfile.TarInfo(name)
        if kind in ("symlink", "link"):
            info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
            info.linkname = target
            tar.addfile(info)
        else:
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    with pytest.raises(DatasetLayoutError, match=r"cannot extract .*evil\.tgz"):
        extract_once(archive, tmp_path / "out" / "ex")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "in",
        "in/evil.tgz",
        "out",
    ]


def test_zip_members_are_read_in_place_never_extracted(tmp_path):
    """Zip archives are read member by member (ZipReader), never extracted: a member named
    ``../../evil.png`` (zip slip) only ever becomes bytes in memory."""
    archive = tmp_path / "d" / "a.zip"
    archive.parent.mkdir()
    evil = "top/../../evil.png"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(evil, b"\x89PNG evil")
    assert ZipReader({"top": archive}).read(evil) == b"\x89PNG evil"
    assert [p.name for p in tmp_path.rglob("*")] == ["d", "a.zip"]
