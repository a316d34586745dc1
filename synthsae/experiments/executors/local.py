"""`local`: cells (sweep trials, recipe cells) in parallel worker processes on this machine (the default executor).

`n_workers` processes (default: the number of CPU cores, at most 8), started with the "spawn"
context (no forked torch state), each running one cell at a time and taking the next when done,
so torch is imported once per worker, not once per cell. A worker that dies (killed, out of
memory) fails only the cell it held; a fresh worker replaces it. Each worker limits torch to
cores // n_workers threads so that parallel cells do not oversubscribe the CPU.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from multiprocessing.connection import wait

from synthsae.experiments.executors.base import Executor, register
from synthsae.experiments.cells import execute, failure_record, read_record


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _exit_with_parent(parent: int) -> None:
    """Stop this worker when the driver dies (even by kill -9, which runs no cleanup): a rerun of the
    same command must not race a leftover worker for the same cell."""
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="synthsae-parent-watch").start()


def _worker(conn, threads: int, parent: int | None = None) -> None:
    """Worker loop: receive a Task (None = stop), run it, answer with its record."""
    import torch

    if parent is not None:
        _exit_with_parent(parent)
    torch.set_num_threads(threads)
    while True:
        task = conn.recv()
        if task is None:
            return
        conn.send(execute(task))


@register("local")
class LocalExecutor(Executor):
    """Parallel worker processes; see module docstring. The workers outlive one `run` (a recipe runs
    its cells in waves: the SAEs, then the analyses that read them) until `close()`."""

    def __init__(self, n_workers: int | None = None, **options):
        super().__init__(n_workers, **options)
        self._workers: dict = {}  # process -> [connection, task it holds or None]
        self._threads: int | None = None

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(child, self._threads, os.getpid()), name="synthsae-cell-worker", daemon=True)
        proc.start()
        child.close()
        self._workers[proc] = [parent, None]

    def run(self, tasks, on_done) -> None:
        workers = self._workers
        n = min(self.n_workers or max(1, min(8, _cores())), len(tasks))
        if self._threads is None:
            self._threads = max(1, _cores() // max(n, 1))
        pending = list(tasks)

        def feed(proc) -> None:
            if pending:
                workers[proc][1] = pending.pop(0)
                workers[proc][0].send(workers[proc][1])

        try:
            while len(workers) < n:
                self._start()
            for proc in list(workers):
                feed(proc)
            while any(task is not None for _, task in workers.values()):
                by_handle = {}
                for proc, (conn, task) in workers.items():
                    if task is not None:
                        by_handle[conn] = proc
                        by_handle[proc.sentinel] = proc
                for handle in wait(list(by_handle)):
                    proc = by_handle[handle]
                    if proc not in workers or workers[proc][1] is None:
                        continue  # its connection and sentinel were both ready
                    conn, task = workers[proc]
                    try:
                        record = conn.recv()
                    except (EOFError, OSError):  # the worker died while running `task`
                        proc.join()
                        del workers[proc]
                        record = read_record(task.out_dir) or failure_record(
                            f"the worker process died (exit code {proc.exitcode}) while running this cell")
                        on_done(task, record)
                        if pending:
                            self._start()
                            feed(list(workers)[-1])
                        continue
                    workers[proc][1] = None
                    on_done(task, record)
                    feed(proc)
        except BaseException:
            self._stop(terminate=True)  # interrupted: stop the workers still running
            raise

    def close(self) -> None:
        self._stop(terminate=False)

    def _stop(self, terminate: bool) -> None:
        for proc, (conn, _) in list(self._workers.items()):
            if terminate:
                proc.terminate()
            else:
                try:
                    conn.send(None)
                except (BrokenPipeError, OSError):
                    proc.terminate()
            proc.join()
        self._workers.clear()
