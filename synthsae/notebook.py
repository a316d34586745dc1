"""Helpers shared by the `notebooks/` walkthroughs (usable in your own notebooks too).

`Walkthrough.from_env(tag)` reads two environment variables: SYNTHSAE_NOTEBOOK_SCALE ("small"
shrinks a walkthrough to seconds; the test suite sets it) and SYNTHSAE_NOTEBOOK_OUT (where figures
go; default: a fresh temporary folder). `show(fig, name)` saves a figure there as PNG and, under
Jupyter, also displays it inline.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

SCALE_ENV = "SYNTHSAE_NOTEBOOK_SCALE"
OUT_ENV = "SYNTHSAE_NOTEBOOK_OUT"


@dataclasses.dataclass(frozen=True)
class Walkthrough:
    """small: run at test-suite size; out: the folder figures (and any files) are written to."""

    small: bool
    out: Path

    @classmethod
    def from_env(cls, tag: str) -> "Walkthrough":
        """Settings from the environment; `tag` names the temporary folder (e.g. "nb03")."""
        out = Path(os.environ.get(OUT_ENV) or tempfile.mkdtemp(prefix=f"synthsae_{tag}_"))
        out.mkdir(parents=True, exist_ok=True)
        return cls(small=os.environ.get(SCALE_ENV, "default") == "small", out=out)

    def show(self, fig, name: str) -> Path:
        """Save `fig` as `out/<name>.png`, display it inline under Jupyter, then close it."""
        path = self.out / f"{name}.png"
        fig.savefig(path, dpi=60 if self.small else 110, bbox_inches="tight")
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:  # plain script: the file is the output
            get_ipython = None
        if get_ipython is not None and get_ipython() is not None:
            display(fig)
        import matplotlib.pyplot as plt

        plt.close(fig)
        return path
