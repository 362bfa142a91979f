"""Miniature datasets in each OFFICIAL layout, and a loopback HTTP server with Range support."""

from __future__ import annotations

import dataclasses
import http.server
import io
import tarfile
import threading
import zipfile
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import scipy.io
from PIL import Image

from dmlstudy.data import DATA_DIR_ENV, DATASETS


@pytest.fixture(autouse=True)
def _no_data_dir_env(monkeypatch):
    """Tests pass data_dir explicitly; a user's $DMLSTUDY_DATA_DIR would override it."""
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)


def png_bytes(seed: int, size: int = 21) -> bytes:
    """A binary (mode "1") drawing like Omniglot's, distinct per seed."""
    rng = np.random.default_rng(seed)
    ink = rng.random((size, size)) < 0.3
    buf = io.BytesIO()
    Image.fromarray(~ink).convert("1").save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes(seed: int, size: tuple[int, int] = (24, 16)) -> bytes:
    """A small RGB JPEG with a colour depending on seed."""
    rng = np.random.default_rng(seed)
    arr = np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (size[1], size[0], 3))
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, "JPEG")
    return buf.getvalue()


def write_zip(path: Path, members: dict[str, bytes], dirs: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        if dirs:  # the official Omniglot zips list directory entries too
            for d in sorted({m.rsplit("/", 1)[0] + "/" for m in members}):
                z.writestr(d, b"")
        for name, data in members.items():
            z.writestr(name, data)
    return path


def write_tgz(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def make_omniglot(
    data_dir: Path,
    alphabets=(("Latin", 2), ("Greek", 1)),
    eval_alphabets=(("Tengwar", 2),),
    drawings: int = 3,
) -> Path:
    """``<data_dir>/omniglot/images_{background,evaluation}.zip``, official member layout."""
    seed = 0
    for top, alphs in (("images_background", alphabets), ("images_evaluation", eval_alphabets)):
        members = {}
        for alphabet, n_chars in alphs:
            for c in range(1, n_chars + 1):
                for d in range(1, drawings + 1):
                    seed += 1
                    members[f"{top}/{alphabet}/character{c:02d}/{seed:04d}_{d:02d}.png"] = (
                        png_bytes(seed)
                    )
        write_zip(data_dir / "omniglot" / f"{top}.zip", members, dirs=True)
    return data_dir


def make_cub(data_dir: Path, classes=(1, 100, 101, 200), per_class: int = 3) -> Path:
    """``<data_dir>/cub200/CUB_200_2011.tgz``: images.txt, image_class_labels.txt, classes.txt."""
    members, images, labels, names = {}, [], [], []
    for c in classes:
        folder = f"{c:03d}.Bird_{c}"
        names.append(f"{c} {folder}")
        for k in range(per_class):
            rel = f"{folder}/Bird_{c}_{k:04d}.jpg"
            images.append(rel)
            labels.append(c)
            members[f"CUB_200_2011/images/{rel}"] = jpeg_bytes(c * 100 + k)
    members["CUB_200_2011/images.txt"] = "".join(
        f"{i} {p}\n" for i, p in enumerate(images, 1)
    ).encode()
    members["CUB_200_2011/image_class_labels.txt"] = "".join(
        f"{i} {c}\n" for i, c in enumerate(labels, 1)
    ).encode()
    members["CUB_200_2011/classes.txt"] = ("\n".join(names) + "\n").encode()
    members["attributes.txt"] = b"1 has_bill_shape::curved\n"
    write_tgz(data_dir / "cub200" / "CUB_200_2011.tgz", members)
    return data_dir


def make_cars(data_dir: Path, classes=(1, 98, 99, 196), per_class: int = 3) -> Path:
    """``car_ims.tgz`` + ``cars_annos.mat`` (struct array 'annotations', cell 'class_names')."""
    n_names = max(classes)
    names = np.empty((1, n_names), dtype=object)
    for i in range(n_names):
        names[0, i] = ["BMW", "Audi", "Aston Martin"][i % 3] + f" Model{i + 1} 2012"
    fields = ["relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"]
    rows, members = [], {}
    for c in classes:
        for k in range(per_class):
            path = f"car_ims/{len(rows) + 1:06d}.jpg"
            members[path] = jpeg_bytes(c * 100 + k)
            rows.append((path, 1, 2, 20, 14, c, k % 2))
    ann = np.empty((1, len(rows)), dtype=[(f, object) for f in fields])
    for i, (path, *numbers) in enumerate(rows):  # char array + uint8 scalars, as upstream
        ann[0, i] = (path, *(np.array([[v]], dtype=np.uint8) for v in numbers))
    (data_dir / "cars196").mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(
        data_dir / "cars196" / "cars_annos.mat", {"annotations": ann, "class_names": names}
    )
    write_tgz(data_dir / "cars196" / "car_ims.tgz", members)
    return data_dir


def make_sop(data_dir: Path, per_class: int = 2) -> Path:
    """``Stanford_Online_Products.zip`` with Ebay_train.txt / Ebay_test.txt."""
    root = "Stanford_Online_Products"
    members, lines = {}, {"train": [], "test": []}
    spec = {
        "train": [(1, 1, "bicycle_final"), (2, 1, "bicycle_final"), (3, 2, "chair_final")],
        "test": [(11319, 1, "bicycle_final"), (11320, 5, "coffee_maker_final")],
    }
    image_id = 0
    for split, classes in spec.items():
        for cls, sup, folder in classes:
            for k in range(per_class):
                image_id += 1
                rel = f"{folder}/{100000 + cls}_{k}.JPG"
                members[f"{root}/{rel}"] = jpeg_bytes(image_id)
                lines[split].append(f"{image_id} {cls} {sup} {rel}")
    for split in lines:
        members[f"{root}/Ebay_{split}.txt"] = (
            "image_id class_id super_class_id path\n" + "\n".join(lines[split]) + "\n"
        ).encode()
    write_zip(data_dir / "sop" / "Stanford_Online_Products.zip", members)
    return data_dir


def make_inshop(data_dir: Path) -> Path:
    """``img.zip`` + ``list_eval_partition.txt`` (count line, header, rows)."""
    rows, members = [], {}
    spec = [
        ("WOMEN/Dresses", 2, ["train", "train"]),
        ("MEN/Denim", 80, ["train", "train"]),
        ("WOMEN/Dresses", 7, ["query", "gallery", "gallery"]),
        ("MEN/Tees_Tanks", 12, ["query", "query", "gallery"]),
    ]
    for cat, item, statuses in spec:
        for k, st in enumerate(statuses):
            path = f"img/{cat}/id_{item:08d}/{k + 1:02d}_1_front.jpg"
            members[path] = jpeg_bytes(item * 10 + k)
            rows.append(f"{path}  id_{item:08d}  {st}")
    write_zip(data_dir / "inshop" / "img.zip", members)
    (data_dir / "inshop" / "list_eval_partition.txt").write_text(
        f"{len(rows)}\nimage_name item_id evaluation_status\n" + "\n".join(rows) + "\n"
    )
    return data_dir


MAKERS = {
    "omniglot": make_omniglot,
    "cub200": make_cub,
    "cars196": make_cars,
    "sop": make_sop,
    "inshop": make_inshop,
}
TINY_COUNTS = {
    "omniglot": {"train": (3, 9), "test": (2, 6)},
    "cub200": {"train": (2, 6), "test": (2, 6)},
    "cars196": {"train": (2, 6), "test": (2, 6)},
    "sop": {"train": (3, 6), "test": (2, 4)},
    "inshop": {"train": (2, 4), "test": (2, 6)},
}


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
