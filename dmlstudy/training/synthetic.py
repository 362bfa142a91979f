"""A synthetic prepared dataset in :func:`dmlstudy.data.prepare_dataset`'s on-disk format, for tests
and throughput benchmarks (any image size / channel count, no archives needed).

Each class is a random smooth pattern; its images are noisy, randomly shifted copies, so a network
can learn it in a few steps.  Coarse labels group ``fine_per_coarse`` consecutive classes.

>>> import tempfile
>>> from dmlstudy.data import PreparedDataset
>>> d = write_synthetic_prepared(tempfile.mkdtemp(), classes={"train": 4, "val": 2, "test": 2},
...                              per_class=3, image_size=8, channels=1)
>>> ds = PreparedDataset.load(d); ds.images.shape, len(ds.split("val")[0])
((24, 8, 8, 1), 6)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from dmlstudy.data.prepared import record_files


def write_synthetic_prepared(
    out_dir: str | Path,
    *,
    classes: dict[str, int],
    per_class: int,
    image_size: int,
    channels: int,
    seed: int = 0,
    fine_per_coarse: int = 2,
    noise: float = 40.0,
) -> Path:
    """Write index.csv / images.npy / meta.json for ``classes[split]`` classes × ``per_class``
    images."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_cls = sum(classes.values())
    # smooth class patterns: 4×4 random grids upsampled to the image size
    coarse_grid = torch.from_numpy(rng.uniform(0, 255, (n_cls, channels, 4, 4)).astype(np.float32))
    patterns = F.interpolate(
        coarse_grid, size=(image_size, image_size), mode="bicubic", align_corners=False
    )
    patterns = patterns.permute(0, 2, 3, 1).numpy()
    rows, images = [], []
    label = 0
    for split in ("train", "val", "test"):
        for _ in range(classes.get(split, 0)):
            for j in range(per_class):
                shift = rng.integers(-1, 2, size=2)
                img = np.roll(patterns[label], tuple(shift), axis=(0, 1)) + rng.normal(
                    0, noise, patterns[label].shape
                )
                images.append(np.clip(img, 0, 255).astype(np.uint8))
                rows.append(
                    {
                        "path": f"{split}/c{label:04d}/{j:03d}.png",
                        "label": label,
                        "coarse_label": label // fine_per_coarse,
                        "split": split,
                        "is_query": True,
                        "is_gallery": True,
                        "class_name": f"class {label}",
                        "coarse_name": f"group {label // fine_per_coarse}",
                    }
                )
            label += 1
    index = pd.DataFrame(rows)
    np.save(out_dir / "images.npy", np.stack(images))
    index.to_csv(out_dir / "index.csv", index=False)
    meta = {
        "name": "synthetic",
        "image_size": image_size,
        "channels": channels,
        "config": {"synthetic": True, "seed": seed},
        "counts": {},
        "class_names": {},
        "files": record_files(out_dir),
    }
    for split in ("train", "val", "test"):
        part = index[index["split"] == split]
        names = part.drop_duplicates("label").sort_values("label")["class_name"].tolist()
        meta["counts"][split] = {"classes": len(names), "images": len(part)}
        meta["class_names"][split] = names
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1))
    return out_dir
