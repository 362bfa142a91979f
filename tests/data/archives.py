"""Miniature datasets in each OFFICIAL layout (member names, metadata files, annotation formats),
shared by the data-layer tests (tests/data) and the photo rehearsal of the whole pipeline
(tests/support/photo_study.py). Every maker writes ``<data_dir>/<name>/<official files>`` and
returns ``data_dir``; ``image(seed) -> bytes`` draws each member (plain RGB JPEGs by default)."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

ImageMaker = Callable[[int], bytes]

#: SOP's (class_id, super_class_id, folder) per split: class ids are global, as upstream.
SOP_SPEC = {
    "train": [(1, 1, "bicycle_final"), (2, 1, "bicycle_final"), (3, 2, "chair_final")],
    "test": [(11319, 1, "bicycle_final"), (11320, 5, "coffee_maker_final")],
}
#: In-Shop's (category, item number, evaluation status of each image).
INSHOP_SPEC = [
    ("WOMEN/Dresses", 2, ["train", "train"]),
    ("MEN/Denim", 80, ["train", "train"]),
    ("WOMEN/Dresses", 7, ["query", "gallery", "gallery"]),
    ("MEN/Tees_Tanks", 12, ["query", "query", "gallery"]),
]


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


#: (width, height, PIL mode) cycled by :func:`varied_jpeg_bytes`: odd sizes, both orientations,
#: a sliver thinner than any cache size, grayscale and CMYK (both occur in the photo datasets).
VARIED = [
    (37, 53, "RGB"),
    (61, 29, "L"),
    (45, 45, "CMYK"),
    (120, 9, "RGB"),
    (33, 71, "CMYK"),
    (50, 41, "L"),
]


def varied_jpeg_bytes(seed: int) -> bytes:
    """A textured JPEG whose size and mode cycle through :data:`VARIED` with ``seed``."""
    w, h, mode = VARIED[seed % len(VARIED)]
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, 3)
    noise = rng.integers(-40, 41, (h, w, 3))
    arr = np.clip(base + noise, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(buf, "JPEG", quality=85)
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


def make_cub(
    data_dir: Path,
    classes=(1, 100, 101, 200),
    per_class: int = 3,
    image: ImageMaker = jpeg_bytes,
) -> Path:
    """``<data_dir>/cub200/CUB_200_2011.tgz``: images.txt, image_class_labels.txt,
    train_test_split.txt (the classification split, unused by the zero-shot protocol),
    classes.txt."""
    members, images, labels, names = {}, [], [], []
    for c in classes:
        folder = f"{c:03d}.Bird_{c}"
        names.append(f"{c} {folder}")
        for k in range(per_class):
            rel = f"{folder}/Bird_{c}_{k:04d}.jpg"
            images.append(rel)
            labels.append(c)
            members[f"CUB_200_2011/images/{rel}"] = image(c * 100 + k)
    members["CUB_200_2011/images.txt"] = "".join(
        f"{i} {p}\n" for i, p in enumerate(images, 1)
    ).encode()
    members["CUB_200_2011/image_class_labels.txt"] = "".join(
        f"{i} {c}\n" for i, c in enumerate(labels, 1)
    ).encode()
    members["CUB_200_2011/train_test_split.txt"] = "".join(
        f"{i} {i % 2}\n" for i in range(1, len(images) + 1)
    ).encode()
    members["CUB_200_2011/classes.txt"] = ("\n".join(names) + "\n").encode()
    members["attributes.txt"] = b"1 has_bill_shape::curved\n"
    write_tgz(data_dir / "cub200" / "CUB_200_2011.tgz", members)
    return data_dir


def make_cars(
    data_dir: Path,
    classes=(1, 98, 99, 196),
    per_class: int = 3,
    image: ImageMaker = jpeg_bytes,
) -> Path:
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
            members[path] = image(c * 100 + k)
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


def make_sop(
    data_dir: Path,
    per_class: int = 2,
    spec: dict[str, list[tuple[int, int, str]]] | None = None,
    image: ImageMaker = jpeg_bytes,
) -> Path:
    """``Stanford_Online_Products.zip`` with Ebay_train.txt / Ebay_test.txt (``spec``: the
    products of each split, default :data:`SOP_SPEC`)."""
    root = "Stanford_Online_Products"
    members, lines = {}, {"train": [], "test": []}
    image_id = 0
    for split, classes in (spec or SOP_SPEC).items():
        for cls, sup, folder in classes:
            for k in range(per_class):
                image_id += 1
                rel = f"{folder}/{100000 + cls}_{k}.JPG"
                members[f"{root}/{rel}"] = image(image_id)
                lines[split].append(f"{image_id} {cls} {sup} {rel}")
    for split in lines:
        members[f"{root}/Ebay_{split}.txt"] = (
            "image_id class_id super_class_id path\n" + "\n".join(lines[split]) + "\n"
        ).encode()
    write_zip(data_dir / "sop" / "Stanford_Online_Products.zip", members)
    return data_dir


def make_inshop(
    data_dir: Path,
    spec: list[tuple[str, int, list[str]]] | None = None,
    image: ImageMaker = jpeg_bytes,
) -> Path:
    """``img.zip`` + ``list_eval_partition.txt`` (count line, header, rows; ``spec``: the items,
    default :data:`INSHOP_SPEC`)."""
    rows, members = [], {}
    for cat, item, statuses in spec or INSHOP_SPEC:
        for k, st in enumerate(statuses):
            path = f"img/{cat}/id_{item:08d}/{k + 1:02d}_1_front.jpg"
            members[path] = image(item * 10 + k)
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
