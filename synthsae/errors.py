"""Clear errors for bad input: what was given, why it is wrong, what would be right.

Every check in synthsae goes through these helpers so that messages share one shape:

    ValueError: world.firing.p = 1.5 is invalid: a probability must lie in [0, 1]. Expected: a float in [0, 1].
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, NoReturn


def fail(field: str, value: Any, why: str, expected: str) -> NoReturn:
    """Raise a `ValueError` naming the field, the value given, why it is wrong and what is valid."""
    raise ValueError(f"{field} = {_short(value)} is invalid: {why}. Expected: {expected}.")


def require(ok: bool, field: str, value: Any, why: str, expected: str) -> None:
    """`fail(...)` unless `ok`."""
    if not ok:
        fail(field, value, why, expected)


def unknown_name(kind: str, name: Any, choices: Iterable[str]) -> NoReturn:
    """Raise a `ValueError` for an unknown registry name, with a "did you mean" suggestion."""
    choices = sorted(choices)
    close = difflib.get_close_matches(str(name), choices, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown {kind} {name!r}.{hint} Available: {', '.join(choices)}.")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
