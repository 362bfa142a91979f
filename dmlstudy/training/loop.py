"""``train(settings) -> metrics``: the training loop with per-epoch checkpoints and exact resume.

Every epoch ends with an atomic ``checkpoint.pt`` (model, loss incl. proxies, optimizer, scheduler,
epoch, best metric, history).  Re-running the same settings on the same ``out_dir`` after a crash or
``kill -9`` resumes from it and ends with the same result as an uninterrupted run: batches are a
function of (seed, epoch), augmentation of (seed, epoch, step), and model/loss initialization of the
seed (built inside ``torch.random.fork_rng`` so the caller's global RNG is untouched).
The reported model is the best-validation epoch by MAP@R (Musgrave et al., ECCV 2020) — the test
split is never used for selection.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

import torch

from dmlstudy.data import MPerClassSampler, PreparedDataset
from dmlstudy.evaluation import evaluate
from dmlstudy.losses import build_loss
from dmlstudy.models import build_embedder
from dmlstudy.training.augment import Preprocess, backbone_mean_std
from dmlstudy.training.checkpoint import atomic_save, load_checkpoint
from dmlstudy.training.epoch import train_epoch
from dmlstudy.training.inference import embed_images, resolve_device
from dmlstudy.training.optim import build_optimizer, build_scheduler, set_backbone_trainable
from dmlstudy.training.outputs import eval_rows, finalize, open_live, train_labels
from dmlstudy.training.settings import TrainSettings

SELECT_METRIC = "map@r"
# Settings that may differ between a run and its resumption (they do not change the result).
RESUME_FREE_KEYS = ("progress",)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed the global torch RNG inside, restore it after (module/proxy initializers use it)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def deterministic(enabled: bool) -> Iterator[None]:
    if enabled:  # cuBLAS needs this for deterministic matmuls (no effect on CPU)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(enabled or before, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _settings_dict(s: TrainSettings) -> dict[str, Any]:
    return s.model_dump(mode="json")


def settings_diff(stored: dict[str, Any], s: TrainSettings) -> list[str]:
    """Sorted keys whose stored value differs from ``s`` (``RESUME_FREE_KEYS`` aside): a run
    folder may be resumed or reused only when this is empty."""
    now = _settings_dict(s)
    return sorted(
        k
        for k in set(stored) | set(now)
        if k not in RESUME_FREE_KEYS and stored.get(k) != now.get(k)
    )


def _check_resumable(stored: dict[str, Any], s: TrainSettings) -> None:
    diff = settings_diff(stored, s)
    if diff:
        raise ValueError(
            f"{s.out_dir / 'checkpoint.pt'} was written with different settings "
            f"({', '.join(diff)}); use another out_dir or delete the old run to start over"
        )


def train(settings: TrainSettings, *, _stop_after_epoch: int | None = None) -> dict[str, Any]:
    """Train, validate every ``eval_every`` epochs, keep the best-validation model, write outputs.

    ``_stop_after_epoch`` is a test hook: return right after that epoch's checkpoint, as if killed.
    """
    with deterministic(settings.deterministic), cpu_threads(settings.cpu_threads):
        return _train(settings, _stop_after_epoch)


def _train(s: TrainSettings, stop_after: int | None) -> dict[str, Any]:
    s.out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(s.device)
    ds = PreparedDataset.load(s.prepared_dir)
    rows, labels, class_names = train_labels(ds, s.label_level)
    val_rows, val_labels = eval_rows(ds, "val", s)
    channels = int(ds.images.shape[-1])

    with seeded(s.seed):
        loss_fn = build_loss(
            s.loss,
            num_classes=len(class_names),
            embedding_dim=s.embedding_dim,
            class_names=class_names,
            **s.loss_params,
        )
        normalize = loss_fn.normalize_embeddings if s.normalize is None else s.normalize
        model = build_embedder(
            s.backbone,
            embedding_dim=s.embedding_dim,
            in_chans=channels,
            pretrained=s.pretrained,
            pooling=s.pooling,
            layer_norm=s.layer_norm,
            normalize=normalize,
            freeze_bn=s.freeze_bn,
        )
    if s.mean is not None:
        mean, std = s.mean, s.std or ()
    else:  # pretrained weights get the statistics they were trained with
        mean, std = backbone_mean_std(model.backbone, channels, s.pretrained)
    pre = Preprocess(s.image_size, s.eval_resize or s.image_size, tuple(mean), tuple(std))
    model.to(device)
    loss_fn.to(device)
    if s.channels_last:  # faster on CUDA and, for convnet4, ~25% on CPU too (benchmarks/)
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, loss_fn, s)
    scheduler = build_scheduler(optimizer, s)
    sampler = MPerClassSampler(labels, s.m_per_class, s.batch_size, s.seed)

    state: dict[str, Any] = {
        "epoch": -1,
        "best_metric": float("-inf"),
        "best_epoch": -1,
        "history": [],
        "train_seconds": 0.0,
        "train_images": 0,
        "wall_seconds": 0.0,
    }
    ckpt_path = s.out_dir / "checkpoint.pt"
    resumed = ckpt_path.is_file()
    if resumed:
        ckpt = load_checkpoint(ckpt_path, map_location=device)
        _check_resumable(ckpt["settings"], s)
        model.load_state_dict(ckpt["model_state"])
        loss_fn.load_state_dict(ckpt["loss_state"])
        optimizer.load_state_dict(ckpt["optimizer_state"])
        scheduler.load_state_dict(ckpt["scheduler_state"])
        state = ckpt["state"]
    base = {
        "settings": _settings_dict(s),
        "model_config": model.config,
        "preprocess": pre.to_dict(),
        "loss_name": s.loss,
        "metric": loss_fn.metric,
        "class_names": class_names,
        "cache_image_size": int(ds.images.shape[1]),
    }

    live = open_live(s.out_dir, resume=resumed)
    try:
        for epoch in range(state["epoch"] + 1, s.epochs):
            epoch_start = time.perf_counter()
            loss_fn.schedule(epoch, s.epochs)
            model.train()
            loss_fn.train()
            set_backbone_trainable(model, optimizer, trainable=epoch >= s.warmup_epochs)
            batches = sampler.epoch_batches(epoch)[: s.max_steps_per_epoch]
            stats = train_epoch(
                model=model,
                loss_fn=loss_fn,
                optimizer=optimizer,
                images=ds.images,
                rows=rows,
                labels=labels,
                batches=batches,
                preprocess=pre,
                settings=s,
                epoch=epoch,
                device=device,
            )
            lrs = {g.get("name", str(i)): g["lr"] for i, g in enumerate(optimizer.param_groups)}
            scheduler.step()
            record: dict[str, Any] = {
                "epoch": epoch,
                "loss": stats.loss,
                "images_per_s": stats.images_per_s,
                "seconds": stats.seconds,
                "lr": lrs,
            }
            state["train_seconds"] += stats.seconds
            state["train_images"] += stats.images
            if (epoch + 1) % s.eval_every == 0 or epoch + 1 == s.epochs:
                emb = embed_images(
                    model,
                    ds.images,
                    pre,
                    rows=val_rows,
                    device=device,
                    batch_size=s.eval_batch_size,
                    amp=s.amp,
                    channels_last=s.channels_last,
                )
                val = evaluate(emb, val_labels, metric=loss_fn.metric, seed=s.seed)
                record["val"] = {k: float(v) for k, v in val.items()}
                if val[SELECT_METRIC] > state["best_metric"]:
                    state["best_metric"], state["best_epoch"] = float(val[SELECT_METRIC]), epoch
                    atomic_save(
                        {
                            **base,
                            "epoch": epoch,
                            "val": record["val"],
                            "model_state": model.state_dict(),
                            "loss_state": loss_fn.state_dict(),
                        },
                        s.out_dir / "best.pt",
                    )
            record["wall_seconds"] = time.perf_counter() - epoch_start
            state["wall_seconds"] += record["wall_seconds"]
            state["history"].append(record)
            state["epoch"] = epoch
            atomic_save(
                {
                    **base,
                    "state": state,
                    "model_state": model.state_dict(),
                    "loss_state": loss_fn.state_dict(),
                    "optimizer_state": optimizer.state_dict(),
                    "scheduler_state": scheduler.state_dict(),
                },
                ckpt_path,
            )
            _log_epoch(live, record)
            if stop_after is not None and epoch == stop_after:
                return {"interrupted_after_epoch": epoch}
        return finalize(s, ds, model, loss_fn, state, device, pre)
    finally:
        live.end()


def _log_epoch(live: Any, record: dict[str, Any]) -> None:
    live.step = record["epoch"]
    live.log_metric("train/loss", record["loss"])
    live.log_metric("train/images_per_s", record["images_per_s"])
    for name, lr in record["lr"].items():
        live.log_metric(f"lr/{name}", lr)
    for k, v in record.get("val", {}).items():
        live.log_metric(f"val/{k}", v)
    live.next_step()
