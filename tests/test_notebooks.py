"""Every notebook in notebooks/ runs top to bottom at small scale (so the walkthroughs never rot).

Each notebook is a jupytext percent-format script; it is executed with `runpy` in a fresh temporary
working directory, with the non-interactive Agg backend, SYNTHSAE_NOTEBOOK_SCALE=small and
SYNTHSAE_NOTEBOOK_OUT pointing into that directory. Any exception fails the test. We also check
that each notebook saved at least one figure and wrote nothing outside its output folder.
"""

from __future__ import annotations

import os
import runpy
from pathlib import Path

import matplotlib
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))


def test_notebooks_are_found_and_documented():
    assert len(NOTEBOOKS) >= 6, f"expected the six walkthroughs in {NOTEBOOK_DIR}, found {NOTEBOOKS}"
    readme = (NOTEBOOK_DIR / "README.md").read_text()
    for nb in NOTEBOOKS:
        assert nb.name in readme, f"{nb.name} is not described in notebooks/README.md"
        text = nb.read_text()
        assert text.startswith("# ---\n# jupyter:\n#   jupytext:"), f"{nb.name} lacks the jupytext header"
        assert "# %% [markdown]" in text, f"{nb.name} has no markdown (prose) cells"


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_at_small_scale(notebook, tmp_path, monkeypatch):
    matplotlib.use("Agg")
    out = tmp_path / "out"
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("SYNTHSAE_NOTEBOOK_SCALE", "small")
    monkeypatch.setenv("SYNTHSAE_NOTEBOOK_OUT", str(out))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    before = set(os.listdir(NOTEBOOK_DIR))
    runpy.run_path(str(notebook), run_name="__main__")
    import matplotlib.pyplot as plt

    plt.close("all")
    assert sorted(out.glob("*.png")), f"{notebook.name} saved no figure"
    assert not list(work.iterdir()), f"{notebook.name} wrote into the working directory: {list(work.iterdir())}"
    assert set(os.listdir(NOTEBOOK_DIR)) == before, f"{notebook.name} wrote into notebooks/"
