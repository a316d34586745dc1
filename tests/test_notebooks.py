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


# ---- the rendered twins (notebooks/NN_name.ipynb, for GitHub) --------------------------------------
def test_every_notebook_has_an_up_to_date_render():
    """Each script has a rendered .ipynb whose cells (code and prose) equal the script's: a script
    edited without `python -m synthsae.notebook render` fails here. No jupyter needed."""
    from synthsae.notebook import stale

    problems = [p for p in (stale(nb) for nb in NOTEBOOKS) if p]
    assert not problems, f"{problems}: run `python -m synthsae.notebook render` (see notebooks/README.md)"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_render_has_figures_is_small_and_portable(notebook):
    import json

    twin = notebook.with_suffix(".ipynb")
    assert twin.stat().st_size < 2_000_000, f"{twin.name} is {twin.stat().st_size / 1e6:.1f} MB"
    nb = json.loads(twin.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{twin.name} shows no figure"
    assert not [o for o in outputs if o["output_type"] == "error"], f"{twin.name} has an error output"
    text = twin.read_text()
    assert "synthsae_render_" not in text, f"{twin.name} leaks the temporary render folder"
    assert nb["metadata"]["synthsae"]["scale"] in ("default", "small")


def test_percent_cells_parses_like_jupytext():
    from synthsae.notebook import percent_cells

    text = ("# ---\n# jupyter:\n#   jupytext:\n# ---\n\n# %% [markdown]\n# # Title\n#\n# prose `x`\n\n"
            "# %%\nimport os\n\nx = 1  # a comment\n\n\n# %%\n# a code comment\nprint(x)\n")
    assert percent_cells(text) == [("markdown", "# Title\n\nprose `x`"), ("code", "import os\n\nx = 1  # a comment"),
                                   ("code", "# a code comment\nprint(x)")]
    jupytext = pytest.importorskip("jupytext", reason="jupytext is in the optional `notebooks` extra")
    for nb in NOTEBOOKS:
        parsed = jupytext.reads(nb.read_text(), fmt="py:percent")
        assert percent_cells(nb.read_text()) == [(c.cell_type, c.source) for c in parsed.cells], nb.name


def test_stale_render_is_caught(tmp_path):
    import shutil

    from synthsae.notebook import main, stale

    script = tmp_path / NOTEBOOKS[0].name
    shutil.copy(NOTEBOOKS[0], script)
    assert stale(script) == f"{script.with_suffix('.ipynb').name} is missing"
    shutil.copy(NOTEBOOKS[0].with_suffix(".ipynb"), script.with_suffix(".ipynb"))
    assert stale(script) is None
    script.write_text(script.read_text().replace("import numpy as np", "import numpy as np  # edited", 1))
    assert "differs" in stale(script)
    assert main(["check"]) == 0
    with pytest.raises(SystemExit):
        main(["check", "99_no_such_notebook"])
