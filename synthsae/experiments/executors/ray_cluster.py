"""`ray`: trials as tasks on a Ray cluster, for sweeps that outgrow one machine.

Optional: `pip install synthsae[ray]`. `address=None` starts a local Ray instance with `n_workers`
CPUs (default: all cores) and shuts it down afterwards; `address="auto"` or "ray://host:10001"
joins an existing cluster (every node needs synthsae installed). Each trial asks for one CPU.
Each trial writes its files into the sweep folder on the node that runs it, so on a multi-node
cluster the output folder should be on a shared filesystem; the results table is complete either
way, because each trial's result record also travels back to the driver.
"""

from __future__ import annotations

from synthsae.experiments.executors.base import Executor, register
from synthsae.experiments.trial import failure_record, read_record, run_trial


def import_ray():
    """Import ray, or raise an ImportError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ImportError(
            "the ray executor needs Ray, which is not installed. Install it with: pip install 'synthsae[ray]'"
        ) from None
    return ray


@register("ray")
class RayExecutor(Executor):
    """Ray tasks; see module docstring. options: address (None = start a local instance)."""

    def __init__(self, n_workers: int | None = None, address: str | None = None):
        super().__init__(n_workers)
        import_ray()  # a missing ray fails before any work
        self.address = address

    def run(self, tasks, on_done) -> None:
        ray = import_ray()
        started = False
        if not ray.is_initialized():
            kwargs = {"num_cpus": self.n_workers} if self.address is None else {}
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False, **kwargs)
            started = True
        try:
            remote = ray.remote(num_cpus=1, max_retries=0)(run_trial)
            refs = {remote.remote(t.config, t.out_dir, t.device): t for t in tasks}
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1)
                for ref in done:
                    task = refs.pop(ref)
                    try:
                        record = ray.get(ref)
                    except Exception as err:  # the task itself never raises: this is a lost worker/node
                        record = read_record(task.out_dir) or failure_record(task, f"ray task failed: {err}")
                    on_done(task, record)
        finally:
            if started:
                ray.shutdown()
