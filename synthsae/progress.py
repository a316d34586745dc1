"""Progress reporting that suits where the output goes.

On a terminal: a tqdm bar, redrawn in place. Anywhere else (a log file, a pipe, CI, a notebook's
captured output) a bar's every redraw becomes a line of text, so a `synthsae demo > log` wrote
thousands of lines; there `LineProgress` prints one line each time another `every` fraction
(default 5%) of the total is done, i.e. about 20 lines per loop:

    train topk: 35% (350/1000 step) 4.1s, eta 7.6s | loss=0.0123 l0=8.0 dead=0

Both have tqdm's `update`, `set_postfix`, `write` and `close`, so a call site that used a tqdm bar
uses `progress_bar(...)` unchanged; `write(msg)` prints a message without breaking a bar.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

from synthsae.errors import require

EVERY = 0.05


def is_terminal(file: TextIO | None = None) -> bool:
    """True when `file` (default: sys.stderr, where bars go) is an interactive terminal."""
    file = sys.stderr if file is None else file
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(total: int | None, desc: str, enabled: bool = True, initial: int = 0, unit: str = "it",
                 file: TextIO | None = None, every: float = EVERY):
    """A progress reporter for a loop of `total` steps, or None when `enabled` is False.

    total: number of updates expected (None or 0: unknown; then only `close` reports). desc: label
    printed first. initial: steps already done (a resumed run). unit: the name of one step.
    file: where to write (default sys.stderr). every: the fraction of total between two lines when
    `file` is not a terminal (in (0, 1]).
    On a terminal the result is a `tqdm.auto.tqdm` bar; elsewhere a `LineProgress`.
    """
    require(0 < every <= 1, "progress every", every, "it is the fraction of the total between two lines",
            "a float in (0, 1], e.g. 0.05")
    require(isinstance(initial, int) and initial >= 0, "progress initial", initial,
            "a count of finished steps cannot be negative", "an int >= 0")
    if not enabled:
        return None
    if is_terminal(file):
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=file)
    return LineProgress(total, desc, initial=initial, unit=unit, file=file, every=every)


def write(message: str, file: TextIO | None = None) -> None:
    """Print a message line; on a terminal through tqdm, so that open bars are redrawn below it."""
    if is_terminal(file):
        from tqdm.auto import tqdm

        tqdm.write(message, file=file)
    else:
        _print(message, file)


def _print(message: str, file: TextIO | None) -> None:
    file = sys.stderr if file is None else file
    file.write(message + "\n")
    file.flush()


class LineProgress:
    """tqdm's interface, printing one line per `every` fraction of `total` (see the module docstring).

    A line is printed when the count enters a new `every`-sized bucket (so a loop of any length
    prints at most 1/every lines, the last at 100%), and by `close` if the last count was not yet
    shown (an interrupted or unknown-length loop). `set_postfix` values appear on the next line.
    """

    def __init__(self, total: int | None, desc: str, initial: int = 0, unit: str = "it", file: TextIO | None = None,
                 every: float = EVERY):
        self.total, self.desc, self.unit, self.file, self.every = total, desc, unit, file, every
        self.n = initial
        self.postfix: dict[str, Any] = {}
        self._start_n = initial
        self._start = time.perf_counter()
        self._bucket = self._bucket_of(initial)
        self._shown_n: int | None = None
        self._closed = False

    def _bucket_of(self, n: int) -> int:
        if not self.total:
            return 0
        # the epsilon: an exact multiple (n / total / every = 1, 2, ...) can land just below it in floats
        return math.floor(n / self.total / self.every + 1e-9)

    def update(self, n: int = 1) -> None:
        self.n += n
        bucket = self._bucket_of(self.n)
        if bucket > self._bucket:
            self._bucket = bucket
            self._show()

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        self.postfix = {**(ordered_dict or {}), **kwargs}

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc

    def write(self, message: str, file: TextIO | None = None) -> None:
        _print(message, self.file if file is None else file)

    def close(self) -> None:
        if not self._closed and self._shown_n != self.n and self.n != self._start_n:
            self._show()
        self._closed = True

    def line(self) -> str:
        """The text of the line for the current count."""
        elapsed = time.perf_counter() - self._start
        done = self.n - self._start_n
        if self.total:
            text = f"{self.desc}: {100 * self.n / self.total:3.0f}% ({self.n}/{self.total} {self.unit}) {elapsed:.1f}s"
            if 0 < done and self.n < self.total:
                text += f", eta {elapsed / done * (self.total - self.n):.1f}s"
        else:
            text = f"{self.desc}: {self.n} {self.unit} {elapsed:.1f}s"
        if self.postfix:
            text += " | " + " ".join(f"{k}={v}" for k, v in self.postfix.items())
        return text

    def _show(self) -> None:
        _print(self.line(), self.file)
        self._shown_n = self.n

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
