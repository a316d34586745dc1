"""Helpers shared by the `notebooks/` walkthroughs (usable in your own notebooks too), and the
command that renders them.

`Walkthrough.from_env(tag)` reads two environment variables: SYNTHSAE_NOTEBOOK_SCALE ("small"
shrinks a walkthrough to seconds; the test suite sets it) and SYNTHSAE_NOTEBOOK_OUT (where figures
go; default: a fresh temporary folder). `show(fig, name)` saves a figure there as PNG and, under
Jupyter, also displays it inline.

Rendering: each walkthrough `notebooks/NN_name.py` (a jupytext percent script, the source) has a
rendered twin `notebooks/NN_name.ipynb` with its outputs, so that GitHub shows the figures:

    pip install 'synthsae[notebooks]'
    python -m synthsae.notebook render            # every notebook; or name some: render 03 06
    python -m synthsae.notebook render --small    # test-suite scale, seconds each
    python -m synthsae.notebook check             # exit 1 if a render no longer matches its script

`render` executes the script's cells in a Jupyter kernel (jupytext + nbclient + ipykernel) in a
temporary working directory, with figures saved to a temporary SYNTHSAE_NOTEBOOK_OUT (its path is
replaced by `$SYNTHSAE_NOTEBOOK_OUT` in the outputs). `check` and `percent_cells` need none of
those packages: the test suite uses them to catch a stale render.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from synthsae.errors import ConfigError

SCALE_ENV = "SYNTHSAE_NOTEBOOK_SCALE"
OUT_ENV = "SYNTHSAE_NOTEBOOK_OUT"
NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
SCRIPT_GLOB = "[0-9][0-9]_*.py"
OUT_PLACEHOLDER = "$" + OUT_ENV


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

    def figure_path(self, name: str) -> Path:
        """Where `show(fig, name)` saves the figure: out/<name>.png."""
        return self.out / f"{name}.png"

    def show(self, fig, name: str) -> None:
        """Save `fig` as `figure_path(name)`, display it inline under Jupyter, then close it.

        Returns None, so that a cell ending in `show(...)` echoes nothing after the figure."""
        fig.savefig(self.figure_path(name), dpi=60 if self.small else 110, bbox_inches="tight")
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:  # plain script: the file is the output
            get_ipython = None
        if get_ipython is not None and get_ipython() is not None:
            display(fig)
        import matplotlib.pyplot as plt

        plt.close(fig)


# ---- cells of a percent script, without jupytext ------------------------------------------------
def percent_cells(text: str) -> list[tuple[str, str]]:
    """The cells of a jupytext percent script as [(cell_type, source)], in order.

    The YAML header (`# ---` ... `# ---`) is dropped; `# %%` starts a code cell and
    `# %% [markdown]` a markdown cell whose lines lose their leading `# ` (`#` alone is an empty
    line); blank lines around a cell's source are dropped, as jupytext does. Enough for the
    walkthroughs here (no cell metadata, magics or raw cells), and checked against jupytext in
    tests/test_notebooks.py.
    """
    lines = text.splitlines()
    if lines and lines[0] == "# ---":
        end = lines.index("# ---", 1)
        lines = lines[end + 1:]
    cells: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.startswith("# %%"):
            kind = "markdown" if line.split("%%", 1)[1].strip().startswith("[markdown]") else "code"
            cells.append((kind, []))
        elif cells:
            cells[-1][1].append(line)
        elif line.strip():
            raise ConfigError(f"text before the first '# %%' cell marker: {line!r}. Expected: every line in a cell.")
    out = []
    for kind, body in cells:
        if kind == "markdown":
            body = [line[2:] if line.startswith("# ") else "" if line == "#" else line for line in body]
        out.append((kind, "\n".join(body).strip("\n")))
    return out


def ipynb_cells(path: str | Path) -> list[tuple[str, str]]:
    """The cells of an .ipynb file as [(cell_type, source)] (plain JSON; no nbformat needed)."""
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    return [(c["cell_type"], "".join(c["source"]) if isinstance(c["source"], list) else c["source"])
            for c in cells]


def scripts(names: Sequence[str] = ()) -> list[Path]:
    """The walkthrough scripts in notebooks/, all or those whose file name starts with one of `names`
    (e.g. "03" or "03_train_and_evaluate"); an unknown name is a `ConfigError`."""
    found = sorted(NOTEBOOK_DIR.glob(SCRIPT_GLOB))
    if not names:
        return found
    picked = [p for p in found if any(p.name.startswith(n.removesuffix(".py")) for n in names)]
    unknown = [n for n in names if not any(p.name.startswith(n.removesuffix(".py")) for p in found)]
    if unknown:
        raise ConfigError(f"notebook {unknown[0]!r} matches no script in {NOTEBOOK_DIR}. "
                         f"Expected: a prefix of one of {[p.name for p in found]}.")
    return picked


def stale(script: Path) -> str | None:
    """Why the rendered twin of `script` does not match it (missing, or cells differ), or None."""
    twin = script.with_suffix(".ipynb")
    if not twin.exists():
        return f"{twin.name} is missing"
    want, have = percent_cells(script.read_text(encoding="utf-8")), ipynb_cells(twin)
    if len(want) != len(have):
        return f"{twin.name} has {len(have)} cells, {script.name} has {len(want)}"
    for i, ((kw, sw), (kh, sh)) in enumerate(zip(want, have)):
        if kw != kh or sw.strip("\n") != sh.strip("\n"):
            return f"cell {i} ({kw}) of {twin.name} differs from {script.name}"
    return None


# ---- rendering ------------------------------------------------------------------------------------
@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables (inherited by the kernel process) and restore them afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _scrub(nb, out_dir: str) -> None:
    """Drop what changes on every run without meaning anything (timestamps, the temp folder)."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = output["text"].replace(out_dir, OUT_PLACEHOLDER)
            for key, value in output.get("data", {}).items():
                if key.startswith("text/") and isinstance(value, str):
                    output["data"][key] = value.replace(out_dir, OUT_PLACEHOLDER)


def render(script: Path, small: bool = False, timeout: int = 3600, kernel: str = "python3") -> Path:
    """Execute `script` in a Jupyter kernel and write its twin `.ipynb` (with outputs); returns it.

    small: run at test-suite scale (SYNTHSAE_NOTEBOOK_SCALE=small). timeout: seconds per cell.
    A failing cell raises (nbclient's `CellExecutionError`, with the traceback) and writes nothing.
    """
    try:
        import jupytext
        import nbformat
        from nbclient import NotebookClient
    except ImportError as e:
        raise ImportError(f"rendering notebooks needs jupytext, nbclient, nbformat and ipykernel ({e}). "
                          "Expected: pip install 'synthsae[notebooks]'.") from e
    nb = jupytext.read(script)
    with tempfile.TemporaryDirectory(prefix="synthsae_render_") as tmp:
        out_dir, work = Path(tmp) / "out", Path(tmp) / "work"
        work.mkdir()
        env = {OUT_ENV: str(out_dir), SCALE_ENV: "small" if small else "default",
               "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}  # see notebooks/README.md
        with _environment(env):
            # log level ERROR: no "kernel running over TCP" warning (a local kernel, our own process)
            NotebookClient(nb, timeout=timeout, kernel_name=kernel, resources={"metadata": {"path": str(work)}},
                           extra_arguments=["--log-level=ERROR"]).execute()
        _scrub(nb, str(out_dir))
    nb.metadata["synthsae"] = {"scale": "small" if small else "default",
                               "rendered_by": "python -m synthsae.notebook render"}
    target = script.with_suffix(".ipynb")
    tmp_target = target.with_suffix(".ipynb.tmp")
    nbformat.write(nb, str(tmp_target))
    os.replace(tmp_target, target)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synthsae.notebook",
                                     description="Render the notebooks/ walkthroughs to .ipynb with outputs, "
                                                 "or check that the renders match their scripts.")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="execute walkthroughs and write notebooks/NN_name.ipynb")
    r.add_argument("names", nargs="*", help="prefixes of the scripts to render, e.g. 03 (default: all)")
    r.add_argument("--small", action="store_true", help="test-suite scale (seconds; numbers not meaningful)")
    r.add_argument("--timeout", type=int, default=3600, help="seconds per cell (default 3600)")
    c = sub.add_parser("check", help="exit 1 if a render is missing or its cells differ from its script")
    c.add_argument("names", nargs="*")
    args = parser.parse_args(argv)
    try:
        chosen = scripts(args.names)
    except ValueError as e:
        parser.error(str(e))
    if args.command == "check":
        problems = [p for p in (stale(s) for s in chosen) if p]
        for p in problems:
            print(f"stale: {p} (run: python -m synthsae.notebook render)")
        return 1 if problems else 0
    for s in chosen:
        t0 = time.perf_counter()
        target = render(s, small=args.small, timeout=args.timeout)
        size = target.stat().st_size / 1e6
        print(f"{target.relative_to(NOTEBOOK_DIR.parent)}: {time.perf_counter() - t0:.0f} s, {size:.2f} MB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
