"""Typed, validated training settings (one run = one ``TrainSettings``).

The pipeline maps ``params.yaml`` into this model; ``extra="forbid"`` makes a misspelt key fail
with the key named (pydantic reports ``Extra inputs are not permitted`` at the key's location).

>>> s = TrainSettings(prepared_dir="p", out_dir="o", loss="multi_similarity")
>>> s.batch_size % s.m_per_class
0
>>> TrainSettings(prepared_dir="p", out_dir="o", loss="ms", epochs=2, warmup_epochs=2)
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for TrainSettings
...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TrainSettings(BaseModel):
    """Everything one training run depends on; stored in every checkpoint and in metrics.json."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- inputs / outputs -------------------------------------------------------------------
    prepared_dir: Path = Field(description="output folder of dmlstudy.data.prepare_dataset")
    out_dir: Path = Field(
        description="run folder: checkpoint.pt, best.pt, embeddings_*.npz, metrics.json, dvclive/"
    )
    # --- loss ---------------------------------------------------------------------------------
    loss: str = Field(description="registry name (dmlstudy.losses.list_losses())")
    loss_params: dict[str, Any] = Field(default_factory=dict, description="loss hyper-parameters")
    label_level: Literal["fine", "coarse"] = Field(
        "fine", description="train on fine labels or on coarse labels (multi-modal experiment)"
    )
    val_coarse_fraction: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="select the epoch on this fraction of the non-test coarse classes: the "
        "prepared validation ones plus train ones moved to validation for this run only (the "
        "multi-modal experiment: more held-out alphabets); None = the prepared split",
    )
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    deterministic: bool = Field(
        True, description="torch.use_deterministic_algorithms(warn_only=True)"
    )
    cpu_threads: int | None = Field(
        None,
        gt=0,
        description="torch.set_num_threads during the run (restored after); None = torch's "
        "default. 1 is much faster on a contended CPU (several runs in parallel)",
    )
    # --- model --------------------------------------------------------------------------------
    backbone: str = Field("convnet4", description="any timm model name, or 'convnet4'")
    pretrained: bool = False
    pretrained_file: Path | None = Field(
        None,
        description="with pretrained: the backbone's weights from this state_dict file "
        "(torch.save; loaded weights_only, keys checked) instead of the model hub: a machine "
        "without internet (dmlstudy.models.pretrained); relative to the repository root",
    )
    embedding_dim: int = Field(128, gt=0)
    pooling: Literal["avg", "max", "avgmax"] = "avg"
    layer_norm: bool = False
    freeze_bn: bool = False
    normalize: bool | None = Field(
        None, description="L2-normalize model output; None follows the loss's normalize_embeddings"
    )
    # --- augmentation / preprocessing ---------------------------------------------------------
    image_size: int = Field(28, gt=0, description="training crop and test-time crop size (pixels)")
    eval_resize: int | None = Field(
        None,
        gt=0,
        description="test-time resize of the shorter side before the center crop; None = "
        "image_size",
    )
    crop_scale: tuple[float, float] = Field(
        (0.16, 1.0), description="random-resized-crop area range"
    )
    crop_ratio: tuple[float, float] = Field(
        (3 / 4, 4 / 3), description="random-resized-crop aspect range"
    )
    max_shift: int = Field(
        0,
        ge=0,
        description="random translation of up to this many pixels per axis (after the crop)",
    )
    hflip: bool = Field(
        True, description="random horizontal flip (turn off for Omniglot characters)"
    )
    mean: tuple[float, ...] | None = Field(
        None,
        description="per-channel mean; None = the pretrained backbone's own (timm pretrained_cfg), "
        "else ImageNet (RGB) / 0.5 (gray)",
    )
    std: tuple[float, ...] | None = Field(None, description="per-channel std; None = as mean")
    # --- optimisation -------------------------------------------------------------------------
    epochs: int = Field(10, gt=0)
    warmup_epochs: int = Field(
        0,
        ge=0,
        description="first epochs train only head + loss parameters (backbone frozen); not "
        "validated, so the plateau rule starts counting after them (as the official warm-ups)",
    )
    batch_size: int = Field(128, gt=1)
    sampler: Literal["m_per_class", "random"] = Field(
        "m_per_class",
        description="batches of batch_size/m_per_class classes x m_per_class images, or random "
        "batches (the official proxy-loss recipes)",
    )
    m_per_class: int = Field(4, gt=0)
    lr: float = Field(1e-4, gt=0)
    backbone_lr_mult: float = Field(1.0, ge=0)
    weight_decay: float = Field(1e-4, ge=0)
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    optimizer_eps: float = Field(1e-8, gt=0, description="Adam eps (RSW / ProxyNCA++ use 1.0)")
    momentum: float = Field(0.9, ge=0, description="SGD momentum")
    schedule: Literal["cosine", "step", "none", "plateau"] = Field(
        "cosine",
        description="per-epoch lr schedule; 'plateau' multiplies the lr by plateau_factor after "
        "`patience` validation rounds without improvement (dmlstudy.training.stopping)",
    )
    patience: int | None = Field(
        None,
        gt=0,
        description="early stopping: stop after this many validation rounds without a val MAP@R "
        "improvement (with schedule 'plateau': once no lr drop is left); None = run all epochs",
    )
    min_delta: float = Field(
        0.0, ge=0, description="smallest gain of the (smoothed) val MAP@R that counts"
    )
    plateau_smoothing: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="the plateau rule reads an EMA of val MAP@R: level = s * level + (1 - s) * "
        "val (0 = the raw curve; the selected epoch stays the best raw one)",
    )
    plateau_stop: bool = Field(
        True,
        description="False: the plateau rule never stops the run; after its last lr drop it "
        "trains on at that lr to `epochs` (the budget check, dmlstudy.study.budget_check)",
    )
    plateau_factor: float = Field(0.1, gt=0, lt=1, description="'plateau' lr multiplier per drop")
    plateau_drops: int = Field(1, ge=0, description="'plateau': lr drops before stopping")
    step_epochs: int = Field(10, gt=0, description="step schedule: decay every this many epochs")
    step_gamma: float = Field(0.5, gt=0, description="step schedule: decay factor")
    grad_clip: float | None = Field(None, gt=0, description="max global gradient norm; None = off")
    grad_clip_value: float | None = Field(
        None,
        gt=0,
        description="clip every gradient element of the model (backbone and head, not the "
        "loss's parameters) to [-v, v], torch clip_grad_value_ as the official ProxyNCA++, "
        "Proxy-Anchor and RSW trainers; None = off",
    )
    divergence_check_every: int = Field(
        10,
        gt=0,
        description="check the loss and embedding norms for NaN/inf and blow-up every N steps "
        "and at each epoch's end (one host sync per check; results do not depend on N)",
    )
    amp: bool = Field(True, description="bf16 autocast on CUDA (no effect on CPU)")
    cpu_amp: bool = Field(
        False, description="bf16 autocast on the CPU too (CPUs with AVX512-BF16 or AMX)"
    )
    channels_last: bool = Field(
        True, description="channels_last memory format (model and inputs, CPU and CUDA)"
    )
    torch_compile: bool = Field(
        False,
        description="torch.compile the backbone (nn.Module.compile: same state_dict); float "
        "rounding differs from eager, the first steps pay the compilation",
    )
    # --- evaluation / budget ------------------------------------------------------------------
    eval_every: int = Field(
        1, gt=0, description="validate every N epochs (and always after the last)"
    )
    eval_batch_size: int = Field(256, gt=0)
    max_steps_per_epoch: int | None = Field(
        None, gt=0, description="cap on steps per epoch (tiny profile)"
    )
    limit_eval: int | None = Field(
        None,
        gt=0,
        description="evaluate at most this many val/test images (seeded subset; tiny profile)",
    )
    evaluate_test: bool = Field(
        True,
        description="embed and score the test split at the end (False while tuning on validation)",
    )
    progress: bool = Field(True, description="tqdm progress bar")

    def validates(self, epoch: int) -> bool:
        """Whether 0-based ``epoch`` ends with a validation round: every ``eval_every`` epochs
        once the warm-up is over, and always after the last.

        >>> s = TrainSettings(prepared_dir="p", out_dir="o", loss="x", epochs=6, warmup_epochs=2)
        >>> [e for e in range(6) if s.validates(e)]
        [2, 3, 4, 5]
        """
        if epoch + 1 == self.epochs:
            return True
        return epoch >= self.warmup_epochs and (epoch + 1) % self.eval_every == 0

    @model_validator(mode="after")
    def _check(self) -> TrainSettings:
        if self.schedule == "plateau" and self.patience is None:
            raise ValueError("schedule 'plateau' needs patience (validation rounds to wait)")
        if self.sampler == "m_per_class" and self.batch_size % self.m_per_class:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of m_per_class "
                f"({self.m_per_class})"
            )
        if self.warmup_epochs >= self.epochs:
            raise ValueError(
                f"warmup_epochs ({self.warmup_epochs}) must be < epochs ({self.epochs})"
            )
        if self.eval_resize is not None and self.eval_resize < self.image_size:
            raise ValueError(
                f"eval_resize ({self.eval_resize}) must be >= image_size ({self.image_size}): "
                f"the test-time center crop is taken from the resized image"
            )
        for name in ("crop_scale", "crop_ratio"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high, got {(lo, hi)}")
        if self.crop_scale[1] > 1:
            raise ValueError(f"crop_scale high must be <= 1, got {self.crop_scale[1]}")
        if self.pretrained_file is not None and not self.pretrained:
            raise ValueError(
                f"pretrained_file ({self.pretrained_file}) holds pretrained weights: set "
                f"pretrained: true with it, or remove pretrained_file"
            )
        if (self.mean is None) != (self.std is None):
            raise ValueError("set both mean and std, or neither")
        if self.mean is not None and len(self.mean) != len(self.std or ()):
            raise ValueError("mean and std must have the same length (one value per channel)")
        return self
