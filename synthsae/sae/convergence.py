"""Has a training run converged? Periodic evaluations on a fixed held-out probe set.

The trainer draws a probe set once per run (`world.sample(n, seed)`, a seed derived apart from
every training batch) and, at `probe_evals` evenly spaced points of the run (the last one at its
end), measures on it:

* EV: 1 - sum (x - x_hat)^2 / sum (x - mean x)^2 over the probe set (inference-time `encode`);
* recovery (worlds with a `dictionary` only): the mean over true atoms of the largest |cos| with
  any decoder row, computed here from the two matrices (at most `MAX_ATOMS` atoms, a fixed seeded
  subset, so the cost stays bounded for 16k-feature worlds);
* L0: mean active latents per probe sample (how a `target_l0` run is reported).

Criterion (`Convergence`): the absolute change of EV, and of recovery when measured, over the
*last doubling before the learning-rate decay* -- from the last evaluation at or before half of
`decay_start` to the last one at or before `decay_start` (the step the lr starts to decay; the end
of the run when it does not decay, or decays over more than half of it) -- is below `tolerance`
(default 0.01). A run whose final probe EV is <= 0 is `collapsed` (it reconstructs no better than
the mean). A run with fewer than two evaluations in reach cannot be judged and counts as not
converged. The reported EV, recovery and L0 are the final ones.

Why the last doubling, in absolute units: SAE metrics grow roughly log-linearly in steps, so the
last doubling's change is about what the next doubling would add (a 4x longer run: about twice
it). An earlier rule (relative change over the last fifth < 2%) passed 8 of 10 bench-lite SAEs
whose F1 then moved by up to 0.24 and MCC by up to 0.13 when trained 4x longer: the last fifth is
a fifth of a doubling, it holds the learning-rate decay that stalls every metric, and a change
relative to a recovery of ~0.6 hides a steady climb.

Why before the decay: annealing the lr lifts EV by a one-off amount that a longer run gets too
(a TopK SAE on the recovery task, flat at probe EV 0.853 for 12 of 16 evaluations at constant lr,
gains 0.013 in its decay tail, and ends at 0.865 at x1 and 0.866 at x4). Counting that lift, the
last doubling of the whole run called such plateaued SAEs unconverged. Measured 2026-12-02 on the
lite bench (benchmarks/README.md, `benchmarks/convergence.py`)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

MAX_ATOMS = 2048
LAST_DOUBLING = 0.5  # the window starts at the last evaluation at or before this fraction of the steps


def plateau_end(n_steps: int, lr_decay_steps: int) -> int:
    """The step the lr starts to decay (the window's end); n_steps without a decay, or when the decay
    takes more than half of the run (then no constant-lr stretch is long enough to judge alone)."""
    return n_steps - lr_decay_steps if 0 < lr_decay_steps <= n_steps // 2 else n_steps


def probe_points(n_steps: int, evals: int, decay_start: int | None = None) -> list[int]:
    """Steps done (1-based) after which the probe set is evaluated: evenly spaced, ending at n_steps;
    with `decay_start` < n_steps also at it and at half of it (the criterion's window)."""
    if evals <= 0 or n_steps <= 0:
        return []
    points = {max(1, round(n_steps * i / evals)) for i in range(1, evals + 1)}
    if decay_start is not None and 0 < decay_start < n_steps:
        points |= {decay_start, max(1, math.floor(LAST_DOUBLING * decay_start))}
    return sorted(points)


def auto_probe_samples(n_samples: int) -> int:
    """Default probe size: a twentieth of the training samples, clipped to [512, 4096]."""
    return int(min(4096, max(512, n_samples // 20)))


class Probe:
    """The held-out samples x (n, d) and, when the world has one, a normalized subset of its atoms."""

    def __init__(self, x: torch.Tensor, dictionary: torch.Tensor | None, seed: int, chunk: int):
        self.x = x
        self.chunk = max(1, chunk)
        centred = x - x.mean(dim=0)
        self.total_ss = float(torch.dot(centred.reshape(-1), centred.reshape(-1)))
        self.atoms = None
        if isinstance(dictionary, torch.Tensor) and dictionary.dim() == 2 and dictionary.shape[1] == x.shape[1]:
            D = dictionary.detach()
            if D.shape[0] > MAX_ATOMS:
                g = torch.Generator().manual_seed(seed)
                D = D[torch.randperm(D.shape[0], generator=g)[:MAX_ATOMS].sort().values]
            D = D.to(device=x.device, dtype=torch.float32)
            self.atoms = D / D.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def evaluate(self, sae: Any) -> tuple[float, float | None, float]:
        """(EV, recovery or None, L0) of `sae` on the probe set (no effect on the SAE or any RNG)."""
        sq, active = 0.0, 0.0
        for i in range(0, self.x.shape[0], self.chunk):
            x = self.x[i:i + self.chunk]
            z = sae.encode(x)
            r = (x - sae.decode(z)).reshape(-1)
            sq += float(torch.dot(r, r))
            active += float((z != 0).sum())
        ev = 1.0 - sq / max(self.total_ss, 1e-30)
        recovery = None
        if self.atoms is not None:
            W = sae.W_dec.detach().to(torch.float32)
            W = W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)
            recovery = float((self.atoms @ W.T).abs().amax(dim=1).mean())
        return ev, recovery, active / self.x.shape[0]


def change(start: float | None, end: float | None) -> float:
    """|end - start| (NaN when either is missing or non-finite)."""
    if start is None or end is None or not (math.isfinite(start) and math.isfinite(end)):
        return float("nan")
    return abs(end - start)


@dataclasses.dataclass(frozen=True)
class Convergence:
    """The convergence diagnostic of one run (see the module docstring).

    window: (steps done at the start of the last doubling, at its end) -- the two evaluations compared.
    ev, recovery, l0: final probe values (recovery None without a dictionary).
    decay_start: the step the lr started to decay when the window ends there, else None.
    ev_change, recovery_change: absolute changes over the window (NaN when not measurable).
    tolerance: the criterion on those changes. target_l0: the run's target, if any.
    converged: both changes below tolerance. collapsed: final probe EV <= 0.
    """

    window: tuple[int, int]
    ev: float
    ev_change: float
    recovery: float | None
    recovery_change: float | None
    l0: float
    target_l0: float | None
    tolerance: float
    probe_samples: int
    converged: bool
    collapsed: bool
    decay_start: int | None = None

    @classmethod
    def measure(cls, steps: list[int], ev: list[float], recovery: list[float | None], l0: list[float],
                n_steps: int, tolerance: float, target_l0: float | None, probe_samples: int,
                lr_decay_steps: int = 0) -> "Convergence | None":
        """From the probe trajectory of a run of n_steps whose lr decays over its last lr_decay_steps;
        None when there is no evaluation at all."""
        if not steps:
            return None
        last = plateau_end(n_steps, lr_decay_steps)
        upto = [i for i, s in enumerate(steps) if s <= last]
        end = upto[-1] if upto else len(steps) - 1
        before = [i for i, s in enumerate(steps) if s <= LAST_DOUBLING * last and i < end]
        start = before[-1] if before else None
        ev_change = change(ev[start], ev[end]) if start is not None else float("nan")
        rec_change = None
        if recovery[-1] is not None:
            rec_change = change(recovery[start], recovery[end]) if start is not None else float("nan")
        ok = ev_change < tolerance and (rec_change is None or rec_change < tolerance)  # NaN compares False
        return cls(window=(steps[start] if start is not None else steps[end], steps[end]), ev=ev[-1],
                   ev_change=ev_change, recovery=recovery[-1], recovery_change=rec_change, l0=l0[-1],
                   target_l0=target_l0, tolerance=tolerance, probe_samples=probe_samples,
                   converged=bool(ok and ev[-1] > 0), collapsed=bool(not ev[-1] > 0),
                   decay_start=last if last < n_steps else None)

    def summary(self) -> str:
        """One line, e.g. "converged: probe EV 0.912 (changed 0.004 over steps 500-1000), recovery ..."."""
        verdict = "collapsed" if self.collapsed else "converged" if self.converged else "not converged"
        where = f"steps {self.window[0]}-{self.window[1]}" + (", before the lr decay" if self.decay_start else "")
        parts = [f"probe EV {self.ev:.4g} (changed {_abs(self.ev_change)} over {where})"]
        if self.recovery is not None:
            parts.append(f"recovery {self.recovery:.4g} (changed {_abs(self.recovery_change)})")
        l0 = f"L0 {self.l0:.4g}"
        if self.target_l0 is not None:
            l0 += f" (target {self.target_l0:g}: {100 * (self.l0 / self.target_l0 - 1):+.1f}%)"
        parts.append(l0)
        window = "last doubling before the lr decay" if self.decay_start else "last doubling"
        return (f"{verdict}: " + ", ".join(parts) + f"; criterion: changes over the {window} < {self.tolerance:g} "
                f"and EV > 0, on {self.probe_samples} held-out samples")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["window"] = list(self.window)
        return {k: _json_number(v) for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Convergence":
        data = dict(data)
        data["window"] = tuple(data["window"])
        for k in ("ev", "ev_change", "l0"):  # NaN was written as null
            if data.get(k) is None:
                data[k] = float("nan")
        if data.get("recovery") is not None and data.get("recovery_change") is None:
            data["recovery_change"] = float("nan")
        return cls(**data)


def _abs(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"{v:.2g}"


def _json_number(v: Any) -> Any:
    """NaN / inf -> None (strict JSON has neither)."""
    return None if isinstance(v, float) and not math.isfinite(v) else v
