"""Pretrained backbone weights without a network: a local file, or a pre-filled hub cache.

``pretrained: true`` makes timm fetch a backbone's ImageNet weights from the Hugging Face hub (or,
for older models, a torch-hub URL). A cluster node without internet has two ways to supply them:

1. **a local file** (``train.pretrained_file``): the backbone's ``state_dict`` saved with
   ``torch.save``, loaded with ``torch.load(..., weights_only=True)`` by
   :func:`load_backbone_file` and checked against the backbone's own keys and shapes (the
   classifier timm drops, ``fc.*`` for ResNets, may be in the file);
2. **a pre-filled hub cache**: the weights downloaded once elsewhere
   (``timm.create_model(name, pretrained=True)``) and the cache folder copied to the node
   (``$HF_HUB_CACHE``, default ``$HF_HOME/hub`` = ``~/.cache/huggingface/hub``; torch-hub URLs in
   ``$TORCH_HOME/hub/checkpoints``); ``HF_HUB_OFFLINE=1`` (set by the Makefile) then reads it
   without a network.

:func:`hub_weights_problem` tells, before any compute and without the network, whether the
weights can be had: cached, or downloadable (not offline, and the server answers a cheap probe).
:func:`weights_help` is the message naming both ways.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: The weight files timm looks for in a hub repository, in its order.
HUB_FILES = ("model.safetensors", "pytorch_model.bin")
_TRUE = {"1", "on", "yes", "true"}


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub`` (default
    ``~/.cache/huggingface/hub``), read now (huggingface_hub reads them once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or str(Path("~/.cache/huggingface"))
    return Path(home).expanduser() / "hub"


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` forbids the hub (``1``, ``true``, ``yes``, ``on``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def weights_source(backbone: str) -> tuple[str, str | None]:
    """``(kind, where)`` of a timm model's default pretrained weights: ``("hf", repo id)``,
    ``("url", url)``, or ``("none", None)`` where timm has none.

    >>> weights_source("resnet18")
    ('hf', 'timm/resnet18.a1_in1k')
    """
    import timm

    cfg = timm.models.get_pretrained_cfg(backbone)
    if cfg is None:
        return "none", None
    if cfg.hf_hub_id:
        return "hf", cfg.hf_hub_id
    if cfg.url:
        return "url", cfg.url
    return "none", None


def cached_weights(backbone: str) -> Path | None:
    """The local copy of ``backbone``'s pretrained weights in the hub (or torch-hub) cache."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    kind, where = weights_source(backbone)
    if kind == "hf" and where is not None:
        repo, _, revision = where.partition("@")
        own = getattr(timm.models.get_pretrained_cfg(backbone), "hf_hub_filename", None)
        for name in (own, *HUB_FILES) if own else HUB_FILES:
            found = try_to_load_from_cache(
                repo, name, cache_dir=hub_cache_dir(), revision=revision or None
            )
            if isinstance(found, str):
                return Path(found)
    if kind == "url" and where is not None:
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(where)
        if path.is_file():
            return path
    return None


def hub_weights_problem(
    backbone: str, probe: Callable[[str], str | None] | None = None
) -> str | None:
    """``None`` when ``timm.create_model(backbone, pretrained=True)`` can get its weights: they
    are in the local cache, or the hub is allowed (``HF_HUB_OFFLINE`` unset) and answers
    ``probe(url)`` (default: a HEAD request, :func:`dmlstudy.data.download.unreachable`). Else
    why not, in words."""
    kind, where = weights_source(backbone)
    if kind == "none" or where is None:
        return f"timm has no pretrained weights for {backbone!r}"
    if cached_weights(backbone) is not None:
        return None
    place = f"the hub cache {hub_cache_dir()}" if kind == "hf" else torch.hub.get_dir()
    if kind == "hf" and hub_offline():
        return f"HF_HUB_OFFLINE is set and its weights ({where}) are not in {place}"
    if probe is None:
        from dmlstudy.data.download import unreachable

        probe = unreachable
    url = f"https://huggingface.co/{where.split('@')[0]}" if kind == "hf" else where
    why = probe(url)
    return None if why is None else f"its weights ({where}) are not in {place} and {why}"


def weights_help(backbone: str, reason: str) -> str:
    """The error for a backbone whose pretrained weights cannot be had: why, and both ways to
    provide them."""
    return (
        f"backbone {backbone!r} with pretrained: true cannot get its pretrained weights: "
        f"{reason}. Provide them in one of two ways: (1) a local file: save the backbone's "
        f"state_dict where it can be downloaded (torch.save(timm.create_model({backbone!r}, "
        f"pretrained=True, num_classes=0).state_dict(), '{backbone}.pth')), copy it here and set "
        f"train.pretrained_file: <path to {backbone}.pth> (in datasets.<dataset>.train); or "
        f"(2) a pre-filled hub cache: run timm.create_model({backbone!r}, pretrained=True) on a "
        f"machine with internet and copy its Hugging Face cache (~/.cache/huggingface/hub, or "
        f"$HF_HUB_CACHE) to {hub_cache_dir()} here (HF_HOME / HF_HUB_CACHE choose the place; "
        f"HF_HUB_OFFLINE=1, set by the Makefile, reads it without a network)"
    )


def _classifier_keys(backbone: nn.Module) -> tuple[str, ...]:
    """Prefixes of the classifier a timm checkpoint holds and the headless backbone lacks."""
    cfg: Any = getattr(backbone, "pretrained_cfg", None) or {}
    names = cfg.get("classifier") or ()
    return (names,) if isinstance(names, str) else tuple(names)


def check_state_dict(backbone: nn.Module, state: Mapping[str, Any], source: str) -> dict:
    """``state`` without the classifier keys, after checking it has exactly the backbone's keys
    with the same shapes; a ValueError names the missing, unexpected and mis-shaped keys."""
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise ValueError(
            f"{source} is not a state_dict (a mapping of parameter names to tensors); save one "
            f"with torch.save(model.state_dict(), path)"
        )
    heads = _classifier_keys(backbone)
    state = {k: v for k, v in state.items() if not any(k.startswith(h + ".") for h in heads)}
    own = backbone.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k} {tuple(state[k].shape)} (model {tuple(own[k].shape)})"
        for k in set(own) & set(state)
        if tuple(getattr(state[k], "shape", ())) != tuple(own[k].shape)
    )
    if missing or unexpected or shapes:
        parts = [
            f"{len(keys)} {what} key(s): {', '.join(keys[:5])}{' …' if len(keys) > 5 else ''}"
            for what, keys in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("mis-shaped", shapes),
            )
            if keys
        ]
        raise ValueError(
            f"{source} does not fit backbone {type(backbone).__name__}: {'; '.join(parts)}. Save "
            f"the state_dict of the same timm model (and in_chans) as train.backbone"
        )
    return state


def read_state_file(path: str | Path) -> Mapping[str, Any]:
    """The ``state_dict`` saved at ``path`` (``train.pretrained_file``), read ``weights_only``
    and memory-mapped (no copy of the tensors); errors name the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"train.pretrained_file {path} does not exist: point it at the backbone's saved "
            f"state_dict (torch.save(model.state_dict(), path))"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, OSError, ValueError, pickle.UnpicklingError) as err:  # not torch's
        raise ValueError(
            f"train.pretrained_file {path} is not a tensors-only torch file ({err}); save the "
            f"backbone's state_dict with torch.save(model.state_dict(), path)"
        ) from err


def load_backbone_file(backbone: nn.Module, path: str | Path) -> None:
    """Load ``path`` (:func:`read_state_file`) into ``backbone`` after
    :func:`check_state_dict`."""
    state = check_state_dict(backbone, read_state_file(path), f"train.pretrained_file {path}")
    backbone.load_state_dict(state)
