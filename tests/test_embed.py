"""dmlstudy.embed: a checkpoint embeds arrays and files exactly like the trainer did."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dmlstudy.embed
from dmlstudy.data import PreparedDataset
from dmlstudy.data.cache import decode_image
from dmlstudy.training import TrainSettings, train
from dmlstudy.training.synthetic import write_synthetic_prepared


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("embed")
    prep = write_synthetic_prepared(
        root / "prep",
        classes={"train": 4, "val": 2, "test": 2},
        per_class=6,
        image_size=20,
        channels=3,
    )
    s = TrainSettings(
        prepared_dir=prep,
        out_dir=root / "run",
        loss="proxy_anchor",
        epochs=1,
        batch_size=8,
        m_per_class=4,
        image_size=16,
        eval_resize=18,
        embedding_dim=8,
        max_steps_per_epoch=1,
        progress=False,
        device="cpu",
        cpu_threads=1,
    )
    train(s)
    return prep, s.out_dir


def test_embed_arrays_reproduces_training_embeddings(trained: tuple[Path, Path]) -> None:
    prep, run = trained
    model = dmlstudy.embed.load(run / "best.pt")
    assert (
        model.metric == "cosine" and model.embedding_dim == 8 and model.preprocess.eval_resize == 18
    )
    saved = np.load(run / "embeddings_test.npz")
    images = PreparedDataset.load(prep).images[saved["rows"]]
    np.testing.assert_allclose(model.embed_arrays(images), saved["embeddings"], rtol=0, atol=1e-6)


def test_embed_paths_uses_the_cache_resize_policy(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    _prep, run = trained
    model = dmlstudy.embed.load(run / "checkpoint.pt")
    rng = np.random.default_rng(0)
    files = []
    for i, size in enumerate([(20, 20), (31, 47)]):  # one at cache size, one needing resize + crop
        arr = rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8)
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(arr).save(files[-1])
    expected = np.stack([decode_image(f.read_bytes(), 3, 20) for f in files])
    np.testing.assert_array_equal(expected[0], np.asarray(Image.open(files[0])))
    np.testing.assert_allclose(
        model.embed_paths(files), model.embed_arrays(expected), rtol=0, atol=1e-6
    )
    raw = np.stack([np.asarray(Image.open(files[1]))] * 2)  # 31×47 arrays: same policy as the file
    np.testing.assert_allclose(
        model.embed_arrays(raw), model.embed_paths([files[1]] * 2), rtol=0, atol=1e-6
    )
    with pytest.raises(ValueError, match="uint8"):
        model.embed_arrays(expected.astype(np.float32))
    with pytest.raises(FileNotFoundError):
        dmlstudy.embed.load(tmp_path / "missing.pt")


def test_embed_uses_the_trainers_autocast_setting(
    trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run trained/evaluated with amp=False must not be embedded in bf16 on CUDA by the API."""
    import torch

    from dmlstudy.training.checkpoint import atomic_save, load_checkpoint

    _, run = trained
    ckpt = load_checkpoint(run / "best.pt")
    ckpt["settings"] = {**ckpt["settings"], "amp": False}
    atomic_save(ckpt, tmp_path / "no_amp.pt")
    seen: list[bool] = []

    def spy(*args: object, **kwargs: object) -> np.ndarray:
        seen.append(bool(kwargs.get("amp", True)))
        return np.zeros((1, 8), np.float32)

    monkeypatch.setattr(dmlstudy.embed, "embed_images", spy)
    dmlstudy.embed.load(tmp_path / "no_amp.pt").embed_arrays(np.zeros((1, 20, 20, 3), np.uint8))
    dmlstudy.embed.load(run / "best.pt").embed_arrays(np.zeros((1, 20, 20, 3), np.uint8))
    assert seen == [False, True] and torch.is_tensor(ckpt["model_state"]["head.weight"])
