"""Read ``params.yaml`` into a :class:`StudyConfig`; every problem becomes one ``ParamsError``
that names the key (``study.losses.1: unknown loss 'tripplet' (did you mean 'triplet'?)...``).

>>> config_from_dict({"study": {"datasets": ["omniglot"], "losses": ["triplet"], "seeds": ["0"]}})
Traceback (most recent call last):
...
dmlstudy.config.errors.ParamsError: invalid params:
  study.seeds.0: Input should be a valid integer ('0' is quoted: write 0 without quotes (a number, not a string))
  data: Field required
  datasets: Field required
  losses: Field required
"""  # noqa: E501

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dmlstudy.config.errors import ParamsError, describe_errors
from dmlstudy.config.study import StudyConfig


def load_config(path: str | Path = "params.yaml") -> StudyConfig:
    """Read and validate ``params.yaml``; raises :class:`ParamsError` naming the bad key."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file not found: {path.resolve()} (run from the repository root)")
    with path.open() as fh:
        try:
            raw = yaml.safe_load(fh) or {}
        except yaml.YAMLError as exc:
            raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path} must hold a mapping of sections, got {type(raw).__name__}")
    return config_from_dict(raw, source=str(path))


def config_from_dict(raw: dict[str, Any], source: str = "params") -> StudyConfig:
    """Validate a params mapping; pydantic errors are re-raised as one :class:`ParamsError`."""
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as exc:
        lines = describe_errors(exc.errors())
        raise ParamsError(f"invalid {source}:\n" + "\n".join(lines)) from None
    except ParamsError as exc:
        raise ParamsError(f"invalid {source}: {exc}") from None
