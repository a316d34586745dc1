"""Clear errors for bad input: what was given, why it is wrong, what would be right.

Every check in synthsae goes through these helpers so that messages share one shape:

    ConfigError: world.firing.p = 1.5 is invalid: a probability must lie in [0, 1]. Expected: a float in [0, 1].

`ConfigError` is the one class for "the input is wrong" (a config value, a file, a path, a device
name): the command line prints it as `synthsae: error: ...` without a traceback, while any other
exception is a bug and keeps its traceback. It subclasses `ValueError`, so code that catches
`ValueError` keeps working.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, NoReturn


class ConfigError(ValueError):
    """A mistake in what the user gave (a config value, a file, a path, a device, an argument)."""


def fail(field: str, value: Any, why: str, expected: str) -> NoReturn:
    """Raise a `ConfigError` naming the field, the value given, why it is wrong and what is valid."""
    raise ConfigError(f"{field} = {_short(value)} is invalid: {why}. Expected: {expected}.")


def require(ok: bool, field: str, value: Any, why: str, expected: str) -> None:
    """`fail(...)` unless `ok`."""
    if not ok:
        fail(field, value, why, expected)


def unknown_name(kind: str, name: Any, choices: Iterable[str]) -> NoReturn:
    """Raise a `ConfigError` for an unknown registry name, with a "did you mean" suggestion."""
    choices = sorted(choices)
    close = difflib.get_close_matches(str(name), choices, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown {kind} {name!r}.{hint} Available: {', '.join(choices)}.")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
