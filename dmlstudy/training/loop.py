"""``train(settings) -> metrics``: the training loop with per-epoch checkpoints and exact resume.

Every epoch ends with an atomic ``checkpoint.pt`` (model, loss incl. proxies, optimizer, scheduler,
epoch, best metric, history).  Re-running the same settings on the same ``out_dir`` after a crash or
``kill -9`` resumes from it and ends with the same result as an uninterrupted run: batches are a
function of (seed, epoch), augmentation of (seed, epoch, step), and model/loss initialization of the
seed (built inside ``torch.random.fork_rng`` so the caller's global RNG is untouched).  A finished
run is reused, a run of other settings replaced (:mod:`.rundir`); divergence stops training with
an error naming the setting to lower (:mod:`.divergence`).
The reported model is the best-validation epoch by MAP@R (Musgrave et al., ECCV 2020) — the test
split is never used for selection. Under torchrun, one run spans the processes
(:mod:`.distributed`): only rank 0 writes, validates and finalizes, the others get its results.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

from dmlstudy.data import PreparedDataset, build_sampler
from dmlstudy.evaluation import evaluate
from dmlstudy.losses import build_loss
from dmlstudy.models import build_embedder
from dmlstudy.models.pretrained import load_backbone_file
from dmlstudy.training.augment import Preprocess, backbone_mean_std
from dmlstudy.training.checkpoint import atomic_save
from dmlstudy.training.distributed import (
    DDPStep,
    Ranks,
    check_in_sync,
    check_shardable,
    current_ranks,
    open_run_ranked,
    sync_batchnorm,
)
from dmlstudy.training.divergence import (
    DivergenceMonitor,
    TrainingDivergedError,
    chance_map_at_r,
    check_above_chance,
    explain,
)
from dmlstudy.training.epoch import LossStep, train_epoch
from dmlstudy.training.fingerprint import run_inputs
from dmlstudy.training.inference import embed_run_rows, resolve_device
from dmlstudy.training.optim import build_optimizer, build_scheduler, set_backbone_trainable
from dmlstudy.training.outputs import eval_rows, finalize, log_epoch, open_live, train_labels
from dmlstudy.training.rundir import (  # noqa: F401  (settings_diff: the public comparison)
    PENDING_BEST,
    RunStart,
    settings_diff,
    settle_best,
)
from dmlstudy.training.runlock import run_lock
from dmlstudy.training.settings import TrainSettings
from dmlstudy.training.stopping import Plateau

SELECT_METRIC = "map@r"


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


def train(
    settings: TrainSettings,
    *,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    _stop_after_epoch: int | None = None,
) -> dict[str, Any]:
    """Train, validate every ``eval_every`` epochs, keep the best-validation model, write outputs.

    ``on_epoch(record)`` (the tuning campaign's pruner) sees each epoch's history record (``epoch``,
    ``val`` after a validation round) once its checkpoint is saved; an exception it raises (e.g.
    ``optuna.TrialPruned``) ends the run there, and a rerun of the folder resumes after that epoch
    (a trial the campaign's budget cut finishes in its confirmation without retraining any).
    ``_stop_after_epoch`` is a test hook: return right after that epoch's checkpoint, as if killed.
    The run folder is locked throughout (:mod:`.runlock`; rank 0 of a torchrun launch): a second
    trainer of it fails at once, naming this one.
    """
    lock = run_lock(settings.out_dir) if current_ranks().main else contextlib.nullcontext()
    with lock, deterministic(settings.deterministic), cpu_threads(settings.cpu_threads):
        return _train(settings, _stop_after_epoch, on_epoch)


def _train(
    s: TrainSettings,
    stop_after: int | None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    ranks = current_ranks()
    check_shardable(s.batch_size, s.sampler, s.m_per_class, ranks.world)
    device = _local_device(resolve_device(s.device), ranks)
    ds = PreparedDataset.load(s.prepared_dir)
    if s.val_coarse_fraction is not None:  # more held-out coarse classes select the epoch
        ds = ds.with_coarse_validation(s.val_coarse_fraction)
    inputs = run_inputs(s.prepared_dir, s.loss, s.loss_params)
    # Everything that can refuse the settings (labels, loss, model, optimizer, sampler) is built
    # before open_run, which may replace the folder: a bad setting leaves a finished run intact.
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
            pretrained=s.pretrained and s.pretrained_file is None,
            pooling=s.pooling,
            layer_norm=s.layer_norm,
            normalize=normalize,
            freeze_bn=s.freeze_bn,
        )
    if s.pretrained_file is not None:  # the weights of a machine without the model hub
        load_backbone_file(model.backbone, s.pretrained_file)
    if s.mean is not None:
        mean, std = s.mean, s.std or ()
    else:  # pretrained weights get the statistics they were trained with
        mean, std = backbone_mean_std(model.backbone, channels, s.pretrained)
    pre = Preprocess(s.image_size, s.eval_resize or s.image_size, tuple(mean), tuple(std))
    model.to(device)
    loss_fn.to(device)
    if s.channels_last:  # faster on CUDA and, for convnet4, ~25% on CPU too (benchmarks/)
        model.to(memory_format=torch.channels_last)
    if ranks.world > 1:
        model = sync_batchnorm(model, device)
    if s.torch_compile:
        model.backbone.compile()  # in place: state_dict keys, hooks and the optimizer unchanged
    optimizer = build_optimizer(model, loss_fn, s)
    plateau = Plateau(
        s.patience, s.min_delta, s.plateau_drops, s.plateau_smoothing, stop=s.plateau_stop
    )
    scheduler = build_scheduler(optimizer, s, plateau)
    sampler = build_sampler(s.sampler, labels, s.batch_size, s.m_per_class, s.seed)
    start = open_run_ranked(s, inputs, device, ranks)
    if start.finished is not None:
        return start.finished
    state = _restore(start, model, loss_fn, optimizer, scheduler, plateau)
    monitor = DivergenceMonitor.from_state(s.loss, state["divergence"])
    base = {
        "settings": s.model_dump(mode="json"),
        "inputs": inputs,
        "model_config": model.config,
        "preprocess": pre.to_dict(),
        "loss_name": s.loss,
        "metric": loss_fn.metric,
        "class_names": class_names,
        "cache_image_size": int(ds.images.shape[1]),
    }
    ckpt_path = s.out_dir / "checkpoint.pt"
    chance = chance_map_at_r(val_labels)
    step = DDPStep(LossStep(model, loss_fn, s, device, ranks), device, ranks)

    live = open_live(s.out_dir, state["history"]) if ranks.main else None
    try:
        for epoch in range(state["epoch"] + 1, s.epochs if not plateau.stopped else 0):
            epoch_start = time.perf_counter()
            loss_fn.schedule(epoch, s.epochs, plateau.dropped if s.schedule == "plateau" else None)
            model.train()
            loss_fn.train()
            set_backbone_trainable(model, optimizer, trainable=epoch >= s.warmup_epochs)
            step.refresh()
            batches = sampler.epoch_batches(epoch)[: s.max_steps_per_epoch]
            try:
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
                    monitor=monitor,
                    step=step,
                    ranks=ranks,
                )
            except TrainingDivergedError as err:
                explain(err, state["epoch"], ckpt_path, s, loss_fn)  # what is on disk, the fix
                raise
            lrs = {g.get("name", str(i)): g["lr"] for i, g in enumerate(optimizer.param_groups)}
            record: dict[str, Any] = {
                "epoch": epoch,
                "loss": stats.loss,
                "images_per_s": stats.images_per_s,
                "seconds": stats.seconds,
                "lr": lrs,
                "session": state["session"],
            }
            state["train_seconds"] += stats.seconds
            state["train_images"] += stats.images
            if s.validates(epoch):  # not in warm-up epochs: the plateau rule starts after
                record["val"] = ranks.on_main(
                    lambda: _validate(model, loss_fn, ds, val_rows, val_labels, pre, s, device)
                )
                rounds = [h["val"][SELECT_METRIC] for h in state["history"] if "val" in h]
                try:  # a run still at chance after its first rounds cannot select a model
                    check_above_chance(
                        [*rounds, record["val"][SELECT_METRIC]], chance, s.loss, epoch
                    )
                except TrainingDivergedError as err:
                    explain(err, state["epoch"], ckpt_path, s, loss_fn)
                    raise
                record["decision"] = plateau.update(epoch, record["val"][SELECT_METRIC])
                if plateau.best_epoch == epoch:  # the best raw round (the smoothed rule aside)
                    state["best_metric"] = record["val"][SELECT_METRIC]
                    state["best_epoch"] = epoch
                    if ranks.main:  # becomes best.pt once the checkpoint below selects it
                        atomic_save(
                            {
                                **base,
                                "epoch": epoch,
                                "val": record["val"],
                                **_weights(model, loss_fn),
                            },
                            s.out_dir / PENDING_BEST.format(epoch=epoch),
                        )
            scheduler.step()  # after validation: a plateau lr drop applies from the next epoch
            state["plateau"] = plateau.state_dict()
            record["wall_seconds"] = time.perf_counter() - epoch_start
            state["wall_seconds"] += record["wall_seconds"]
            state["history"].append(record)
            state["epoch"] = epoch
            state["divergence"] = monitor.state()
            check_in_sync([model, loss_fn], ranks)
            if ranks.main:
                _save_epoch(base, state, model, loss_fn, optimizer, scheduler, ckpt_path, live)
            if on_epoch is not None:  # after the save: a run it stops resumes past this epoch
                on_epoch(record)
            if stop_after is not None and epoch == stop_after:
                return {"interrupted_after_epoch": epoch}
            if plateau.stopped:
                break
        return ranks.on_main(lambda: finalize(s, ds, model, loss_fn, state, device, pre, inputs))
    finally:
        if live is not None:
            live.end()


def _local_device(device: torch.device, ranks: Ranks) -> torch.device:
    """Under DDP on CUDA, this process's GPU (torchrun's LOCAL_RANK, made current by the
    launcher)."""
    if ranks.world > 1 and device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def _save_epoch(
    base: dict[str, Any],
    state: dict[str, Any],
    model: torch.nn.Module,
    loss_fn: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    ckpt_path: Any,
    live: Any,
) -> None:
    """The epoch's checkpoint, best.pt settled, then its dvclive row (rank 0)."""
    atomic_save(
        {
            **base,
            "state": state,
            **_weights(model, loss_fn),
            "optimizer_state": optimizer.state_dict(),
            "scheduler_state": scheduler.state_dict(),
        },
        ckpt_path,
    )
    settle_best(ckpt_path.parent, state)
    log_epoch(live, state["history"][-1])  # after the checkpoint: every logged row is in it


def _weights(model: torch.nn.Module, loss_fn: torch.nn.Module) -> dict[str, Any]:
    return {"model_state": model.state_dict(), "loss_state": loss_fn.state_dict()}


def _restore(
    start: RunStart,
    model: torch.nn.Module,
    loss_fn: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    plateau: Plateau,
) -> dict[str, Any]:
    """The loop's state: a new run's, or the checkpoint's with every object restored from it
    (the plateau rule's state before the scheduler, which reads its lr drops); ``session`` counts
    the train() calls that trained this run (0 = the first)."""
    ckpt = start.checkpoint
    if ckpt is None:
        return {
            "epoch": -1,
            "best_metric": float("-inf"),
            "best_epoch": -1,
            "history": [],
            "train_seconds": 0.0,
            "train_images": 0,
            "wall_seconds": 0.0,
            "divergence": None,
            "session": 0,
            "plateau": plateau.state_dict(),
        }
    model.load_state_dict(ckpt["model_state"])
    loss_fn.load_state_dict(ckpt["loss_state"])
    optimizer.load_state_dict(ckpt["optimizer_state"])
    plateau.__dict__.update(ckpt["state"]["plateau"])
    scheduler.load_state_dict(ckpt["scheduler_state"])
    return {**ckpt["state"], "session": ckpt["state"]["session"] + 1}


def _validate(
    model: torch.nn.Module,
    loss_fn: Any,
    ds: PreparedDataset,
    val_rows: Any,
    val_labels: Any,
    pre: Preprocess,
    s: TrainSettings,
    device: torch.device,
) -> dict[str, float]:
    """Validation metrics of the current model (model selection uses ``SELECT_METRIC``)."""
    emb = embed_run_rows(model, ds.images, pre, val_rows, s, device)
    val = evaluate(emb, val_labels, metric=loss_fn.metric, seed=s.seed)
    return {k: float(v) for k, v in val.items()}
