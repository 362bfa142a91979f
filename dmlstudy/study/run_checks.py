"""Settings that only the data or the model can refuse, checked before any stage runs.

:mod:`.check_params` builds every run's ``TrainSettings``; this module checks each against what
training would meet, so that no such error surfaces at training, after a run folder was emptied:

* the batches: ``batch_size / m_per_class`` classes per batch must not exceed the training
  classes; ``m_per_class`` above the images of every class is an error (the m-per-class sampler
  draws a class with fewer images with replacement: every batch would repeat images, e.g. 32 of
  Omniglot's 20 drawings), above the median (or, without an index, the mean) or the smallest
  class a warning (SOP and In-shop classes hold 2 to a few dozen images: m above the smallest is
  common practice and the sampler's documented behaviour); random batches need ``batch_size``
  training images;
* the model: the embedder is built (on the meta device, no weights) with the run's backbone,
  ``embedding_dim``, pooling and head, e.g. ``embedding_dim`` above the backbone's feature width;
* the pretrained weights (``pretrained: true``): a ``pretrained_file`` that fits the backbone, or
  the hub's weights in the local cache or downloadable (:mod:`dmlstudy.models.pretrained`).

The training split's counts (:func:`split_counts`) come, most exact first, from the prepared
data (``work/prepared/<dataset>``, when written with the active prepare settings), from the
dataset's index when its archives are local and read in place (zip: Omniglot, SOP, In-shop; the
index costs 0.4 s for Omniglot), with ``max_classes_per_split`` and the validation split applied
as :func:`dmlstudy.data.prepare_dataset` applies them, else from its official split sizes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from dmlstudy.config import ParamsError, StudyConfig
from dmlstudy.data import DataError, get_spec
from dmlstudy.data.catalog import open_dataset
from dmlstudy.data.sources import absent_files
from dmlstudy.data.splits import (
    assign_validation_split,
    select_classes,
    widen_coarse_validation,
)
from dmlstudy.models import build_embedder
from dmlstudy.models.convnet import LOCAL_BACKBONES
from dmlstudy.models.embedder import create_backbone
from dmlstudy.models.pretrained import (
    check_state_dict,
    hub_weights_problem,
    read_state_file,
    weights_help,
)
from dmlstudy.study.runs import RunSpec, deciding_keys
from dmlstudy.training.settings import TrainSettings

log = logging.getLogger(__name__)

#: Datasets whose index is read from their archives in place (no extraction): cheap to count.
INDEX_IN_PLACE = ("omniglot", "sop", "inshop")


@dataclass(frozen=True)
class LevelCounts:
    """Training classes of one label level and their images: counted from an index (``exact``),
    else from the official split sizes (``typical`` is then the mean images per class, the
    smallest and largest class unknown, and ``classes`` exact only for ``val_by: class``)."""

    classes: int | None
    images: int
    typical: float  # median images per class (exact) or the official mean
    smallest: int | None
    largest: int | None
    exact: bool
    classes_exact: bool


@dataclass(frozen=True)
class SplitCounts:
    """The training split of one dataset under the active profile (``index``: the split index
    it was counted from, where there is one)."""

    dataset: str
    source: str  # where the counts come from, for the messages
    fine: LevelCounts
    coarse: LevelCounts | None
    index: pd.DataFrame | None = field(default=None, compare=False, repr=False)

    def level(
        self, label_level: str, val_coarse_fraction: float | None = None
    ) -> LevelCounts | None:
        """Counts at ``label_level``; coarse runs that widen the validation split
        (``val_coarse_fraction``: the multi-modal experiment) train on the coarse classes left
        after :func:`~dmlstudy.data.splits.widen_coarse_validation` (a ValueError where it
        cannot widen)."""
        if label_level == "fine":
            return self.fine
        if val_coarse_fraction is None or self.index is None or self.coarse is None:
            return self.coarse
        index = widen_coarse_validation(self.index, val_coarse_fraction)
        return _level(index[index["split"] == "train"], "coarse_label")


def _level(train: pd.DataFrame, column: str) -> LevelCounts:
    sizes = train.groupby(column).size().to_numpy()
    return LevelCounts(
        len(sizes),
        int(sizes.sum()),
        float(np.median(sizes)),
        int(sizes.min()),
        int(sizes.max()),
        True,
        True,
    )


def _from_index(dataset: str, index: pd.DataFrame, source: str) -> SplitCounts:
    train = index[index["split"] == "train"]
    has_coarse = bool((train["coarse_label"] >= 0).all()) and len(train) > 0
    return SplitCounts(
        dataset,
        source,
        _level(train, "label"),
        _level(train, "coarse_label") if has_coarse else None,
        index[["label", "coarse_label", "split"]] if has_coarse else None,
    )


def _prepare_config(config: StudyConfig, dataset: str) -> dict[str, Any]:
    p = config.prepare_settings(dataset)
    return {
        "image_size": p.image_size,
        "val_fraction": p.val_fraction,
        "val_by": p.val_by,
        "seed": p.split_seed,
        "max_classes_per_split": p.max_classes_per_split,
    }


def split_counts(
    config: StudyConfig, dataset: str, prepared_root: str | Path | None = "work/prepared"
) -> SplitCounts:
    """Counts of ``dataset``'s training split under the active profile (module docstring)."""
    want = _prepare_config(config, dataset)
    prepared = Path(prepared_root) / dataset if prepared_root is not None else None
    if prepared is not None and (prepared / "meta.json").is_file():
        try:
            stored = json.loads((prepared / "meta.json").read_text()).get("config", {})
            if all(stored.get(k) == v for k, v in want.items() if k != "image_size"):
                index = pd.read_csv(prepared / "index.csv", usecols=["label", "coarse_label",
                                                                     "split"])  # fmt: skip
                return _from_index(dataset, index, f"the prepared data in {prepared}")
        except (OSError, ValueError, KeyError):
            pass  # unreadable or stale: count from the archives or the official sizes
    spec = get_spec(dataset)
    if dataset in INDEX_IN_PLACE and not absent_files(spec, config.data_dir(), config.work_dir()):
        try:
            index, _ = open_dataset(
                dataset, config.data_dir(), work_dir=config.work_dir(), download=False
            )
            if want["max_classes_per_split"] is not None:
                index = select_classes(index, want["max_classes_per_split"])
            index = assign_validation_split(
                index, want["val_fraction"], want["seed"], by=want["val_by"]
            )
            return _from_index(dataset, index, f"the {dataset} archives' index")
        except (DataError, ValueError) as exc:
            log.warning("%s: counting from the official split sizes (%s)", dataset, exc)
    classes, images = spec.expected["train"]
    mean = images / classes
    kept = min(classes, want["max_classes_per_split"] or classes)
    if want["val_by"] == "class":  # exactly as assign_validation_split draws them
        kept -= round(float(want["val_fraction"] * kept))
    return SplitCounts(
        dataset,
        f"{dataset}'s official split sizes ({classes} training classes, {images} images)",
        LevelCounts(kept, round(kept * mean), mean, None, None, False, want["val_by"] == "class"),
        None,
    )


def _fix_sources(sources: Callable[[str], str], *keys: str) -> str:
    return ", ".join(f"{k} from {sources(k)}" for k in keys)


def check_batches(
    s: TrainSettings, where: str, counts: SplitCounts, sources: Callable[[str], str]
) -> list[str]:
    """Raise a :class:`ParamsError` for batches the training split cannot fill; return warnings.
    ``sources(key)`` names the params section a training setting came from."""
    try:
        level = counts.level(s.label_level, s.val_coarse_fraction)
    except ValueError as exc:  # too few coarse classes to widen the validation split
        raise ParamsError(
            f"{where}: {exc} ({_fix_sources(sources, 'val_coarse_fraction')})"
        ) from None
    if level is None:
        return []
    what = f"the {s.label_level}-label training split of {counts.dataset} (counted from " \
        f"{counts.source})"  # fmt: skip
    if s.sampler == "random":
        if level.exact and s.batch_size > level.images:
            raise ParamsError(
                f"{where}: batch_size {s.batch_size} exceeds the {level.images} images of {what} "
                f"({_fix_sources(sources, 'batch_size')}). To fix: batch_size <= {level.images}"
            )
        return []
    per_batch = s.batch_size // s.m_per_class
    if level.classes is not None and per_batch > level.classes:
        bound = "" if level.classes_exact else "at most "
        raise ParamsError(
            f"{where}: batch_size / m_per_class = {s.batch_size} / {s.m_per_class} = {per_batch} "
            f"classes per batch, but {what} holds {bound}{level.classes} classes "
            f"({_fix_sources(sources, 'batch_size', 'm_per_class')}). To fix: batch_size <= "
            f"{level.classes * s.m_per_class} (at most {level.classes} classes x m_per_class "
            f"{s.m_per_class}), or a larger m_per_class"
        )
    if level.largest is not None and s.m_per_class > level.largest:  # every class repeats
        raise ParamsError(
            f"{where}: m_per_class {s.m_per_class} exceeds the images of every class of {what} "
            f"(at most {level.largest}): the sampler would draw every class with replacement, "
            f"the same image several times in each batch "
            f"({_fix_sources(sources, 'm_per_class')}). To fix: m_per_class <= {level.largest} "
            f"(and batch_size a multiple of it)"
        )
    kind = "median" if level.exact else "mean"
    if s.m_per_class > level.typical:
        return [
            f"{where}: m_per_class {s.m_per_class} exceeds the {kind} {level.typical:.3g} "
            f"images per class of {what}: most classes are drawn with replacement (the same "
            f"image twice in a batch) ({_fix_sources(sources, 'm_per_class')})"
        ]
    if level.smallest is not None and s.m_per_class > level.smallest:
        return [
            f"{where}: m_per_class {s.m_per_class} exceeds the {level.smallest} images of the "
            f"smallest classes of {what}: those are drawn with replacement"
        ]
    return []


_MODELS: dict[tuple[Any, ...], str | None] = {}


def check_model_builds(
    s: TrainSettings, where: str, channels: int, sources: Callable[[str], str]
) -> None:
    """Build the run's embedder on the meta device (no memory, no weights: a timm backbone is
    built with ``pretrained=False``): catches what :class:`dmlstudy.models.Embedder` rejects,
    e.g. an ``embedding_dim`` above the backbone's feature width (a linear head on ``C``
    features spans at most ``C`` dimensions: ``convnet4_050`` has 32, ``convnet4`` 64)."""
    local = s.backbone in LOCAL_BACKBONES
    key = (s.backbone, s.embedding_dim, s.pooling, s.layer_norm, channels, local and s.pretrained)
    if key not in _MODELS:
        try:
            with torch.device("meta"):
                build_embedder(
                    s.backbone,
                    embedding_dim=s.embedding_dim,
                    in_chans=channels,
                    pretrained=s.pretrained if local else False,
                    pooling=s.pooling,
                    layer_norm=s.layer_norm,
                )
            _MODELS[key] = None
        except (ValueError, TypeError, RuntimeError) as exc:
            _MODELS[key] = str(exc)
    if _MODELS[key] is not None:
        keys = ("backbone", "embedding_dim", "pretrained", "pooling")
        raise ParamsError(
            f"{where}: the model rejects its settings ({_fix_sources(sources, *keys)}): "
            f"{_MODELS[key]}"
        )


def check_pretrained_weights(
    s: TrainSettings,
    where: str,
    channels: int,
    sources: Callable[[str], str],
    probe: Callable[[str], str | None] | None = None,
    seen: dict[tuple[Any, ...], str | None] | None = None,
) -> None:
    """A run with ``pretrained: true`` can get its backbone's weights before any compute: its
    ``pretrained_file`` exists and fits the backbone (keys and shapes, read without loading the
    tensors), or timm's hub weights are in the local cache, or the hub may be used and answers
    ``probe`` (:func:`dmlstudy.models.pretrained.hub_weights_problem`). Otherwise the error names
    the model and both ways to provide the weights (a local file, a pre-filled hub cache).
    ``seen`` keeps the answers of one check (one probe per backbone and file)."""
    if not s.pretrained or s.backbone in LOCAL_BACKBONES:
        return
    seen = {} if seen is None else seen
    key = (s.backbone, channels, str(s.pretrained_file) if s.pretrained_file else None)
    if key not in seen:
        if s.pretrained_file is None:
            reason = hub_weights_problem(s.backbone, probe)
            seen[key] = None if reason is None else weights_help(s.backbone, reason)
        else:
            try:
                with torch.device("meta"):
                    backbone = create_backbone(s.backbone, pretrained=False, in_chans=channels)
                source = f"train.pretrained_file {s.pretrained_file}"
                check_state_dict(backbone, read_state_file(s.pretrained_file), source)
                seen[key] = None
            except (OSError, ValueError, RuntimeError) as exc:
                seen[key] = str(exc)
    if seen[key] is not None:
        keys = ("backbone", "pretrained_file") if s.pretrained_file else ("backbone", "pretrained")
        raise ParamsError(f"{where} ({_fix_sources(sources, *keys)}): {seen[key]}")


def key_sources(config: StudyConfig, run: RunSpec) -> Callable[[str], str]:
    """``key -> the params section that sets it`` for one run (the deciding key's section, in
    the precedence of :func:`dmlstudy.study.runs.train_layers`)."""
    deciding = deciding_keys(run.layers(config)[1])

    def source(key: str) -> str:
        return deciding[key].rsplit(".", 1)[0] if key in deciding else "the TrainSettings default"

    return source
