"""The photo rehearsal's study: the four photo datasets as small archives in their official
layouts (:mod:`tests.data.archives`, with JPEGs of odd sizes, grayscale and CMYK) and a temporary
copy of the pipeline (:func:`tests.support.tiny_repo.make_repo`) that runs every stage on them
at the tiny profile with a small timm backbone, one loss and one seed.

The copy's datasets expect these archives' class and image counts instead of the official ones
(:func:`expect_counts` edits ``EXPECTED`` in the copied ``dmlstudy/data/<name>.py``); nothing
else of the photo path is changed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from dmlstudy.models.embedder import create_backbone
from tests.data.archives import make_cars, make_cub, make_inshop, make_sop, varied_jpeg_bytes

PHOTO = ("cub200", "cars196", "sop", "inshop")
LOSSES = ["multi_similarity"]
MULTIMODAL = ["sop", "inshop"]
BACKBONE = "test_resnet"  # timm's 0.4 M-parameter test ResNet: 96 features
CACHE_SIZE = 40  # the uint8 cache's side (the photo protocol's 256, scaled down)
PER_CLASS = 5  # validation needs 9 images (Recall@8: 8 neighbours), test 33 (the R@32 curve)

_SUPERS = [
    (1, "bicycle_final"),
    (2, "cabinet_final"),
    (3, "chair_final"),
    (4, "coffee_maker_final"),
    (5, "fan_final"),
    (6, "kettle_final"),
]
_CATEGORIES = [
    "WOMEN/Dresses",
    "MEN/Denim",
    "WOMEN/Blouses_Shirts",
    "MEN/Tees_Tanks",
    "MEN/Pants",
    "WOMEN/Skirts",
]
#: 18 training products, 3 in each of 6 super classes: val_fraction 0.1 holds out 2 products, the
#: multi-modal runs' val_coarse_fraction 0.3 2 super classes (4 left: a batch of 16 / 4); 8 test.
SOP_PRODUCTS = {
    "train": [(cls, sup, folder) for cls, (sup, folder) in enumerate(_SUPERS * 3, start=1)],
    "test": [(11319 + i, *_SUPERS[i % 2 * 2]) for i in range(8)],
}
#: 18 training items (3 per category, as SOP), 8 test items of 2 query and 4 gallery images each.
INSHOP_ITEMS = [
    (category, item, ["train"] * PER_CLASS)
    for item, category in enumerate(_CATEGORIES * 3, start=1)
] + [
    (_CATEGORIES[i % 2 * 3], 20 + i, ["query", "gallery", "query", "gallery", "gallery", "gallery"])
    for i in range(8)
]
#: (classes, images) per official split of each miniature dataset.
COUNTS = {
    "cub200": {"train": (10, 10 * PER_CLASS), "test": (8, 8 * PER_CLASS)},
    "cars196": {"train": (10, 10 * PER_CLASS), "test": (8, 8 * PER_CLASS)},
    "sop": {"train": (18, 18 * PER_CLASS), "test": (8, 8 * PER_CLASS)},
    "inshop": {"train": (18, 18 * PER_CLASS), "test": (8, 48)},
}


def write_archives(data_dir: Path) -> Path:
    """The four photo datasets under ``data_dir`` (``<data_dir>/<name>/<official files>``)."""
    make_cub(
        data_dir,
        classes=(*range(1, 11), *range(101, 109)),
        per_class=PER_CLASS,
        image=varied_jpeg_bytes,
    )
    make_cars(
        data_dir,
        classes=(*range(1, 11), *range(99, 107)),
        per_class=PER_CLASS,
        image=varied_jpeg_bytes,
    )
    make_sop(data_dir, per_class=PER_CLASS, spec=SOP_PRODUCTS, image=varied_jpeg_bytes)
    make_inshop(data_dir, spec=INSHOP_ITEMS, image=varied_jpeg_bytes)
    return data_dir


def expect_counts(repo: Path, name: str, counts: dict[str, tuple[int, int]]) -> None:
    """Make the copy's dataset ``name`` expect ``counts`` (its one-line ``EXPECTED = {...}``)."""
    module = repo / "dmlstudy" / "data" / f"{name}.py"
    text, n = re.subn(
        r"^EXPECTED = \{.*\}$", f"EXPECTED = {counts!r}", module.read_text(), flags=re.M
    )
    assert n == 1, f"{module}: no one-line EXPECTED = {{...}} to replace"
    module.write_text(text)


#: The backbone's "pretrained" weights, a state_dict in the copy (a path relative to its root):
#: the runs train from it under HF_HUB_OFFLINE=1, as on a machine without the model hub.
WEIGHTS = "weights/test_resnet.pth"


def save_weights(path: Path) -> dict[str, torch.Tensor]:
    """A randomly initialised RGB ``BACKBONE``'s state_dict at ``path``."""
    torch.manual_seed(7)
    state = create_backbone(BACKBONE, pretrained=False, in_chans=3).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def edit_study(repo: Path, params: dict[str, Any]) -> None:
    """The photo datasets at a small cache size with a small timm backbone trained from
    :data:`WEIGHTS`, counts of the miniature archives."""
    save_weights(repo / WEIGHTS)
    for name in PHOTO:
        expect_counts(repo, name, COUNTS[name])
        params["datasets"][name]["prepare"]["image_size"] = CACHE_SIZE
        params["datasets"][name]["train"].update(
            backbone=BACKBONE,
            pretrained=True,
            pretrained_file=WEIGHTS,
            embedding_dim=32,
            image_size=32,
            eval_resize=36,
        )


#: One thread per process: OpenMP threads that wait on each other in turn on a busy CPU
#: (scikit-learn's t-SNE of the evaluation page, torch) were most of some stages' time (14 s for
#: a t-SNE of 48 points, 0.1 s with one thread); and the rehearsal runs stages side by side.
THREADS = {"OMP_NUM_THREADS": "1"}


def dataset_of(stage: str) -> str:
    """A stage's dataset (``train@sop-multi_similarity-0``: ``sop``), else its name: the unit of
    :func:`tests.support.tiny_repo.repro_parallel` (one DVC process per dataset's stages)."""
    return stage.partition("@")[2].split("-")[0] or stage


STUDY = dict(
    datasets=list(PHOTO),
    losses=LOSSES,
    seeds=[0],
    profile="tiny",
    ablations=[],
    multimodal=MULTIMODAL,
)
