"""`ray`: cells as tasks on a Ray cluster, for sweeps and recipes that outgrow one machine.

Optional: `pip install synthsae[ray]`. `address=None` starts a local Ray instance with `n_workers`
CPUs (default: all cores) and shuts it down afterwards; `address="auto"` or "ray://host:10001"
joins an existing cluster (every node needs synthsae installed). Each cell asks for one CPU.

Workers do not share the driver's filesystem: each cell runs in a scratch folder on its node
(removed afterwards), the files of the cells it reads travel to it as bytes, and its record comes
back with every file it wrote; the driver writes them into the output folder. A cell killed with
its node restarts from scratch on the next run (its checkpoints lived on that node).
"""

from __future__ import annotations

import shutil
import tempfile

from synthsae.experiments import cells
from synthsae.experiments.executors.base import Executor, register


def import_ray():
    """Import ray, or raise an ImportError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ImportError(
            "the ray executor needs Ray, which is not installed. Install it with: pip install 'synthsae[ray]'"
        ) from None
    return ray


def run_remote(task: cells.Task, input_files: dict[str, dict[str, bytes]]) -> dict:
    """On a worker: run `task` in a fresh scratch folder and return its record with its files."""
    scratch = tempfile.mkdtemp(prefix="synthsae-cell-")
    try:
        return cells.execute(task, scratch=scratch, input_files=input_files)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@register("ray")
class RayExecutor(Executor):
    """Ray tasks; see module docstring. options: address (None = start a local instance)."""

    def __init__(self, n_workers: int | None = None, address: str | None = None):
        super().__init__(n_workers)
        import_ray()  # a missing ray fails before any work
        self.address = address

    def run(self, tasks, on_done) -> None:
        ray = import_ray()
        if not ray.is_initialized():
            kwargs = {"num_cpus": self.n_workers} if self.address is None else {}
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False, **kwargs)
            self._started = True
        try:
            remote = ray.remote(num_cpus=1, max_retries=0)(run_remote)
            refs = {}
            for t in tasks:
                inputs = {k: cells.pack(folder) for k, folder in t.inputs.items()}
                refs[remote.remote(t, inputs)] = t
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1)
                for ref in done:
                    task = refs.pop(ref)
                    try:
                        record = ray.get(ref)
                    except Exception as err:  # the task itself never raises: this is a lost worker/node
                        record = cells.failure_record(f"ray task failed: {err}")
                    on_done(task, record)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Shut down the Ray instance `run` started (not a cluster or instance that was already running)."""
        if getattr(self, "_started", False):
            import_ray().shutdown()
            self._started = False
