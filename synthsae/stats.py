"""Statistics over seeds: the one place where a number compared across SAEs gets its uncertainty.

Every verdict and ranking in synthsae (recipes, `synthsae bench`) is a statistic over independent
seeds, computed here with stated rules:

* `summarize(values)` -> `Summary`: mean, standard error (sample std / sqrt(n)) and a two-sided
  Student-t confidence interval (default 95%) over the seeds. With one seed the SE and CI are NaN:
  nothing compared with it can be called.
* `compare(a, b)` -> `Comparison`: the difference of means with the Welch standard error of the
  difference, sqrt(se_a^2 + se_b^2). The rule: a difference is *called* when |mean_a - mean_b|
  exceeds `threshold` (default 2) standard errors of the difference; `direction` is then +1
  (a > b) or -1 (a < b), otherwise 0 ("within noise"). With fewer than 2 seeds on either side the
  comparison is inconclusive (`direction` None).
* `rank(summaries)` -> groups of tied names, best first: two entries tie when their confidence
  intervals overlap (a conservative rule: overlapping 95% intervals can still differ at 2 SE).

Plain Python floats in and out; NaN values are refused, not dropped (a NaN is a failed
measurement that must be reported, not averaged away).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

from scipy import stats as _scipy_stats

from synthsae.errors import require

DEFAULT_LEVEL = 0.95
DEFAULT_THRESHOLD = 2.0


@dataclasses.dataclass(frozen=True)
class Summary:
    """A number measured on n seeds. mean; se = std(ddof=1) / sqrt(n) (NaN for n = 1);
    lo, hi: the two-sided t confidence interval at `level` (NaN for n = 1); values: the seeds' values."""

    mean: float
    se: float
    lo: float
    hi: float
    n: int
    level: float
    values: tuple[float, ...]

    def text(self, digits: int = 3) -> str:
        """'0.812 ± 0.014 (95% CI 0.78–0.84, n=3)' or '0.812 (n=1, no interval)'."""
        if self.n < 2:
            return f"{self.mean:.{digits}g} (n=1, no interval)"
        half = (self.hi - self.lo) / 2
        return (f"{self.mean:.{digits}g} ± {half:.2g} ({self.level:.0%} CI {self.lo:.{digits}g}–{self.hi:.{digits}g}, "
                f"n={self.n})")


@dataclasses.dataclass(frozen=True)
class Comparison:
    """mean_a - mean_b (`diff`), its standard error `se`, and the call: direction +1 (a larger),
    -1 (b larger), 0 (|diff| <= threshold * se: within noise), None (fewer than 2 seeds on a side)."""

    diff: float
    se: float
    direction: int | None
    threshold: float

    def text(self, a: str = "a", b: str = "b", digits: int = 3) -> str:
        """A sentence with the numbers and the rule applied."""
        if self.direction is None:
            return f"{a} − {b} = {self.diff:.{digits}g}: inconclusive (needs >= 2 seeds on each side)"
        rel = {1: f"{a} > {b}", -1: f"{a} < {b}", 0: f"{a} ≈ {b} (within noise)"}[self.direction]
        return f"{rel}: difference {self.diff:.{digits}g}, SE {self.se:.2g}, rule |diff| > {self.threshold:g} SE"


def summarize(values: Sequence[float], level: float = DEFAULT_LEVEL) -> Summary:
    """Mean, SE and t confidence interval of the per-seed `values` (length n >= 1, all finite)."""
    vals = tuple(float(v) for v in values)
    require(len(vals) >= 1, "values", values, "a summary needs at least one seed's value", "a non-empty list")
    require(all(math.isfinite(v) for v in vals), "values", values,
            "a NaN or inf is a failed measurement, not a sample", "finite values (report failures separately)")
    require(0 < level < 1, "level", level, "a confidence level is a probability", "a float in (0, 1), e.g. 0.95")
    n = len(vals)
    mean = math.fsum(vals) / n
    if n < 2:
        return Summary(mean, math.nan, math.nan, math.nan, 1, level, vals)
    var = math.fsum((v - mean) ** 2 for v in vals) / (n - 1)
    se = math.sqrt(var / n)
    half = float(_scipy_stats.t.ppf(0.5 + level / 2, n - 1)) * se
    return Summary(mean, se, mean - half, mean + half, n, level, vals)


def compare(a: Summary | Sequence[float], b: Summary | Sequence[float],
            threshold: float = DEFAULT_THRESHOLD) -> Comparison:
    """Compare two per-seed samples (or their summaries) with the rule in the module docstring."""
    require(threshold > 0, "threshold", threshold, "the rule needs a positive number of standard errors",
            "a float > 0, e.g. 2")
    sa = a if isinstance(a, Summary) else summarize(a)
    sb = b if isinstance(b, Summary) else summarize(b)
    diff = sa.mean - sb.mean
    if sa.n < 2 or sb.n < 2:
        return Comparison(diff, math.nan, None, threshold)
    se = math.sqrt(sa.se ** 2 + sb.se ** 2)
    if abs(diff) > threshold * se:
        direction = 1 if diff > 0 else -1
    else:
        direction = 0
    return Comparison(diff, se, direction, threshold)


def rank(summaries: Mapping[str, Summary], higher_is_better: bool = True) -> list[list[str]]:
    """Names grouped into tiers, best first. Sorted by mean; a name joins the current tier when its
    confidence interval overlaps the interval of any name already in that tier (single-seed
    entries have no interval and tie with their neighbours)."""
    order = sorted(summaries, key=lambda k: summaries[k].mean, reverse=higher_is_better)
    tiers: list[list[str]] = []
    for name in order:
        s = summaries[name]
        if tiers and any(_overlap(s, summaries[other]) for other in tiers[-1]):
            tiers[-1].append(name)
        else:
            tiers.append([name])
    return tiers


def _overlap(a: Summary, b: Summary) -> bool:
    if a.n < 2 or b.n < 2:
        return True
    return a.lo <= b.hi and b.lo <= a.hi
