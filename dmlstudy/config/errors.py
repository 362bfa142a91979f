"""``ParamsError`` and the wording of a quoted number: params.yaml numbers and booleans are YAML
scalars, never strings (``lr: "0.001"`` is rejected, not coerced).

>>> quoted_scalar_hint("0.001")
"'0.001' is quoted: write 0.001 without quotes (a number, not a string)"
>>> quoted_scalar_hint("true")
"'true' is quoted: write true without quotes (a boolean, not a string)"
>>> quoted_scalar_hint("adam") is None
True
"""

from __future__ import annotations

from typing import Any

_BOOLEANS = ("true", "false", "yes", "no", "on", "off")


class ParamsError(ValueError):
    """A bad value in params.yaml; the message names the key and the valid choices."""


def quoted_scalar_hint(value: object) -> str | None:
    """The fix for a string that YAML would read as a number or boolean without its quotes,
    else ``None``."""
    if not isinstance(value, str):
        return None
    if value.strip().lower() in _BOOLEANS:
        kind = "a boolean"
    else:
        try:
            float(value)
        except ValueError:
            return None
        kind = "a number"
    return f"{value!r} is quoted: write {value.strip()} without quotes ({kind}, not a string)"


def describe_errors(errors: list[dict[str, Any]], prefix: str = "") -> list[str]:
    """pydantic's ``ValidationError.errors()`` → one ``"  <key>: <message>"`` line each, the key
    prefixed with ``prefix`` and a quoted number pointed out."""
    lines = []
    for err in errors:
        key = ".".join([prefix, *map(str, err["loc"])] if prefix else map(str, err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        hint = quoted_scalar_hint(err.get("input")) if err["type"].endswith("_type") else None
        msg += f" ({hint})" if hint else ""
        lines.append(f"  {key}: {msg}" if key else f"  {msg}")
    return lines
