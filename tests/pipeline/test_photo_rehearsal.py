"""The photo path rehearsed end to end: CUB-200-2011, Cars196, SOP and In-Shop as small archives
in their official layouts (:mod:`tests.support.photo_study`) through every stage of
``dvc repro`` in a temporary copy of the repository, at the tiny profile with a small timm
backbone. It checks what only the whole path can get wrong: In-Shop scored query to gallery,
SOP and In-Shop coarse labels reaching the multi-modal stage, the index naming each dataset's
protocol, grayscale / CMYK JPEGs of odd sizes through the uint8 cache.

The runs train from a ``pretrained_file`` under ``HF_HUB_OFFLINE=1``, as on a machine without
the model hub. One module-scoped run is shared by the tests here: 16 notebooks, each its own
kernel, whose fixed costs (DVC, kernel start, imports) are nearly all of the time. Two DVC
processes run at a time, one per dataset's stages (one thread each: 2 cores), and a plain
``dvc repro`` renders the index and finds every other stage up to date: under 2 minutes on 2
cores shared with a nice-10 tuning campaign (a serial ``dvc repro``: about 4)."""

from __future__ import annotations

import io
import re
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dmlstudy.evaluation import evaluate
from dmlstudy.training.checkpoint import load_checkpoint
from tests.data.archives import VARIED
from tests.support.photo_study import (
    CACHE_SIZE,
    LOSSES,
    MULTIMODAL,
    PHOTO,
    STUDY,
    THREADS,
    WEIGHTS,
    dataset_of,
    edit_study,
    write_archives,
)
from tests.support.tiny_repo import dvc, env, make_repo, repro_parallel

pytestmark = pytest.mark.slow  # the four photo datasets through DVC: about 2 minutes

RUN = f"{LOSSES[0]}/seed0"


@pytest.fixture(scope="module")
def photo_study(tmp_path_factory):
    """``(repo, tmp)`` after ``dvc repro`` of the photo study."""
    tmp = tmp_path_factory.mktemp("photo")
    run_env = env(tmp, write_archives(tmp / "data"))
    # every stage and notebook kernel imports the copy (its datasets expect the miniature
    # counts), not the checkout an editable install or $PYTHONPATH points to
    run_env.update(PYTHONPATH=str(tmp / "repo"), HF_HUB_OFFLINE="1", **THREADS)
    repo = make_repo(tmp, run_env, study=STUDY, edit=edit_study, campaign=False)
    # two datasets' stages at a time (2 cores), then the index by a plain `dvc repro`, which
    # finds every other stage recorded as it would have recorded it
    ran = repro_parallel(repo, run_env, tmp / "logs", jobs=2, unit=dataset_of, leave=["report"])
    last = dvc(repo, run_env, "repro").stdout
    assert re.findall(r"Running stage '(.+)'", last) == ["report"], last
    assert sorted(re.findall(r"Stage '(.+)' didn't change", last)) == sorted(ran), last
    return repo, tmp


def test_every_stage_ran_and_rendered(photo_study):
    repo, _ = photo_study
    pages = ["geometry.html", "report.html", "index.html"]
    for d in PHOTO:
        pages += [f"{d}/prepare.html", f"{d}/train/{LOSSES[0]}-seed0.html", f"{d}/evaluate.html"]
    pages += [f"{d}/multimodal.html" for d in MULTIMODAL]
    missing = [p for p in pages if not (repo / "reports" / p).is_file()]
    assert not missing, missing
    index = (repo / "reports" / "index.html").read_text()
    assert all(f'href="{d}/evaluate.html"' in index for d in PHOTO)


def test_runs_trained_from_the_pretrained_file_without_the_hub(photo_study):
    """HF_HUB_OFFLINE=1 and pretrained: true: check_params let the runs through on their
    pretrained_file (a path relative to the repository), and each started from it."""
    import torch

    repo, _ = photo_study
    state = torch.load(repo / WEIGHTS, weights_only=True)
    for d in PHOTO:
        run = repo / "work" / "runs" / d / RUN
        settings = pd.read_json(run / "metrics.json", typ="series")["settings"]
        assert settings["pretrained"] and settings["pretrained_file"] == WEIGHTS
        trained = load_checkpoint(run / "best.pt")["model_state"]
        # BatchNorm statistics move at every step; the first conv's weights 2 steps from the file
        moved = (trained["backbone.conv1.0.weight"] - state["conv1.0.weight"]).abs().max()
        assert 0 < moved < 0.05, (d, float(moved))


def test_inshop_is_scored_query_to_gallery(photo_study):
    """The 16 query images are searched among the 32 gallery images, never among themselves:
    the run's metrics and the evaluation table equal that evaluation, not all against all."""
    repo, _ = photo_study
    run = repo / "work" / "runs" / "inshop" / RUN
    e = np.load(run / "embeddings_test.npz")
    q, g = e["is_query"], e["is_gallery"]
    assert q.sum() == 16 and g.sum() == 32 and not (q & g).any()
    metric = pd.read_json(run / "metrics.json", typ="series")["metric"]
    expected = evaluate(
        e["embeddings"][q],
        e["labels"][q],
        gallery_embeddings=e["embeddings"][g],
        gallery_labels=e["labels"][g],
        metric=metric,
        seed=0,
    )
    test = pd.read_json(run / "metrics.json", typ="series")["test"]
    assert test == pytest.approx({k: float(v) for k, v in expected.items()})
    all_vs_all = evaluate(e["embeddings"], e["labels"], metric=metric, seed=0)
    assert test != pytest.approx({k: float(v) for k, v in all_vs_all.items()})
    table = pd.read_csv(repo / "results" / "inshop" / "table.csv").set_index("loss")
    assert table.loc[LOSSES[0], "recall@1"] == pytest.approx(100 * test["recall@1"], abs=1e-3)


@pytest.mark.parametrize("dataset", MULTIMODAL)
def test_coarse_labels_reach_the_multimodal_stage(photo_study, dataset):
    """SOP super classes and In-Shop categories: trained on, held out whole for validation, and
    scored for the fine structure kept."""
    repo, _ = photo_study
    run = repo / "work" / "multimodal" / dataset / RUN
    metrics = pd.read_json(run / "metrics.json", typ="series")
    assert metrics["settings"]["label_level"] == "coarse" and "test_fine" in metrics
    prepared = pd.read_csv(repo / "work" / "prepared" / dataset / "index.csv")
    e = np.load(run / "embeddings_test.npz")
    coarse = prepared["coarse_label"].to_numpy()[e["rows"]]
    assert (coarse >= 0).all() and len(set(coarse)) == 2
    assert (e["coarse_labels"] == coarse).all()
    result = pd.read_csv(repo / "results" / dataset / "multimodal.csv")
    assert result["loss"].tolist() == LOSSES
    assert result[["coarse_recall@1", "fine_recall@1", "within_coarse_nmi"]].notna().all().all()


def test_the_index_names_each_datasets_protocol(photo_study):
    repo, _ = photo_study
    html = (repo / "reports" / "index.html").read_text()
    section = html[html.index('<section id="published">') :]
    section = section[: section.index("</section>")]
    notes = dict(re.findall(r"<h3>(\w+)</h3>\s*<p class=\"note\">([^<]*)</p>", section))
    assert sorted(notes) == sorted(PHOTO), notes
    for d in ("cub200", "cars196", "sop"):
        assert "protocol" in notes[d] and "queries all the others" in notes[d], notes[d]
    assert "query to gallery, not all against all" in notes["inshop"], notes["inshop"]


def _source(tmp: Path, dataset: str, path: str) -> bytes:
    """The bytes of index ``path`` in the archives: extracted tgz (CUB, Cars) or the zip."""
    if dataset in ("cub200", "cars196"):
        extracted = tmp / "cache" / "extracted" / dataset / path
        if extracted.is_file():
            return extracted.read_bytes()
        archive = "CUB_200_2011.tgz" if dataset == "cub200" else "car_ims.tgz"
        with tarfile.open(tmp / "data" / dataset / archive) as tar:
            return tar.extractfile(path).read()
    archive = "Stanford_Online_Products.zip" if dataset == "sop" else "img.zip"
    with zipfile.ZipFile(tmp / "data" / dataset / archive) as z:
        return z.read(path)


@pytest.mark.parametrize("dataset", PHOTO)
def test_grayscale_cmyk_and_odd_sizes_through_the_cache(photo_study, dataset):
    """Every JPEG, whatever its mode and size, is an RGB ``CACHE_SIZE``² image of its own
    colours in the cache: gray stays gray, CMYK is not inverted, slivers are not padded."""
    repo, tmp = photo_study
    prepared = repo / "work" / "prepared" / dataset
    images = np.load(prepared / "images.npy", mmap_mode="r")
    index = pd.read_csv(prepared / "index.csv")
    assert images.shape == (len(index), CACHE_SIZE, CACHE_SIZE, 3) and images.dtype == np.uint8
    seen = set()
    for i, path in enumerate(index["path"]):
        src = Image.open(io.BytesIO(_source(tmp, dataset, path)))
        seen.add((*src.size, src.mode))
        img = np.asarray(images[i]).astype(int)
        if src.mode == "L":
            assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
        want = np.asarray(src.convert("RGB")).reshape(-1, 3).mean(axis=0)
        got = img.reshape(-1, 3).mean(axis=0)
        assert np.abs(got - want).max() < 12, (path, src.mode, src.size, got, want)
        assert img.max(axis=(1, 2)).min() > 0 and img.max(axis=(0, 2)).min() > 0, path
    assert seen == set(VARIED), seen
