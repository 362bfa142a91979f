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

import math
import re
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import ValidationError

from dmlstudy.config.errors import ParamsError, describe_errors
from dmlstudy.config.study import StudyConfig

_FLOAT_TAG = "tag:yaml.org,2002:float"
#: YAML 1.2's float: ``1e-3`` (no dot) is a number, as DVC's ruamel.yaml and JSON read it;
#: PyYAML's YAML 1.1 resolver reads it as the string '1e-3'.
_FLOAT_12 = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class ParamsLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose plain scalars follow YAML 1.2's floats (``1e-3`` → 0.001).

    >>> yaml.load("{a: 1e-3, b: 2E+2, c: 1.5, d: 3, e: '1e-3', f: .inf}", Loader=ParamsLoader)
    {'a': 0.001, 'b': 200.0, 'c': 1.5, 'd': 3, 'e': '1e-3', 'f': inf}
    """

    yaml_implicit_resolvers: ClassVar[dict] = {
        first: [(tag, rx) for tag, rx in resolvers if tag != _FLOAT_TAG]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


ParamsLoader.add_implicit_resolver(_FLOAT_TAG, _FLOAT_12, list("-+0123456789."))


def read_params(text: str) -> Any:
    """Parse params.yaml text as the pipeline does (:class:`ParamsLoader`)."""
    return yaml.load(text, Loader=ParamsLoader)


def load_config(path: str | Path = "params.yaml") -> StudyConfig:
    """Read and validate ``params.yaml``; raises :class:`ParamsError` naming the bad key."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file not found: {path.resolve()} (run from the repository root)")
    try:
        raw = read_params(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path} must hold a mapping of sections, got {type(raw).__name__}")
    return config_from_dict(raw, source=str(path))


def non_finite_keys(value: Any, key: str = "") -> list[str]:
    """Key paths of the NaN / ±inf numbers in a params mapping (no setting takes one).

    >>> non_finite_keys({"train": {"lr": float("inf"), "epochs": 3}, "s": [1.0, float("nan")]})
    ['train.lr', 's.1']
    """
    if isinstance(value, float) and not math.isfinite(value):
        return [key]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return []
    return [k for sub, v in items for k in non_finite_keys(v, f"{key}.{sub}" if key else str(sub))]


def config_from_dict(raw: dict[str, Any], source: str = "params") -> StudyConfig:
    """Validate a params mapping; pydantic errors are re-raised as one :class:`ParamsError`."""
    bad = non_finite_keys(raw)
    if bad:
        raise ParamsError(
            f"invalid {source}: non-finite value(s) (.nan / .inf) at "
            + ", ".join(bad)
            + ": write a finite number (null where a setting means 'none')"
        )
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as exc:
        lines = describe_errors(exc.errors())
        raise ParamsError(f"invalid {source}:\n" + "\n".join(lines)) from None
    except ParamsError as exc:
        raise ParamsError(f"invalid {source}: {exc}") from None
