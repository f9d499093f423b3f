"""Worker processes that compute the tasks of a sample in parallel, results in order.

`ordered_map` runs a function over a stream of tasks, in this process or in a
pool of worker processes, and yields the results in task order, with at most
two tasks per worker in flight so that memory stays flat. Workers die with
their parent, even under ``kill -9``; Ctrl-C reaches the parent alone, and an
interrupted run computes nothing more of what is queued.
``calotools.sim.samples`` (single particles) and ``calotools.sim.event_samples``
(collision events) make their files with it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from itertools import islice
from typing import TypeVar

__all__ = ["PARENT_POLL_S", "default_workers", "ordered_map"]

Job = TypeVar("Job")
Task = TypeVar("Task")
Result = TypeVar("Result")


#: How often a worker looks whether its parent still lives, where the system
#: cannot tell it (not Linux), in seconds.
PARENT_POLL_S = 1.0


def _die_with(parent: int) -> None:
    """End this worker process when ``parent`` ends, even by ``kill -9``.

    On Linux the kernel sends SIGKILL (``PR_SET_PDEATHSIG``); elsewhere a thread
    polls the parent's pid. A parent that died before either was set up is
    caught by the pid check.
    """
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1  # <linux/prctl.h>
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    else:

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(PARENT_POLL_S)
            os._exit(1)

        threading.Thread(target=watch, name="calotools-parent-watch", daemon=True).start()
    if os.getppid() != parent:
        os._exit(1)


def default_workers() -> int:
    """Worker processes for production: the CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Hold Ctrl-C back while work is handed to the pool, then deliver it.

    A KeyboardInterrupt raised in one of the interpreter's at-fork hooks is
    printed as "Exception ignored" and lost, and the run would go on to the
    end; one raised inside ``submit`` can leave the pool's bookkeeping half
    done, and its shutdown waiting for ever. Two things hold it back: SIGINT is blocked in this thread, so the
    forked workers start with it blocked; and, because the kernel may hand the
    signal to another thread (tqdm's monitor), Python's handler only notes it.
    It is raised as a KeyboardInterrupt once the workers exist.
    """
    in_main_thread = threading.current_thread() is threading.main_thread()
    noted: list[int] = []
    previous = None
    if in_main_thread:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: noted.append(signum))
    blocking = hasattr(signal, "pthread_sigmask")  # not on Windows, which does not fork
    if blocking:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        if blocking:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        if in_main_thread:
            signal.signal(signal.SIGINT, previous or signal.default_int_handler)
    if noted:
        raise KeyboardInterrupt


def _start(start: Callable[[Job], None], job: Job, parent: int) -> None:
    """A worker process's start: ignore Ctrl-C, die with the parent, then ``start(job)``."""
    # Ctrl-C reaches the whole process group; the parent alone answers it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with(parent)
    start(job)


def ordered_map(
    run: Callable[[Task], Result],
    tasks: Iterable[Task],
    *,
    start: Callable[[Job], None],
    job: Job,
    workers: int,
    ahead: int = 2,
) -> Iterator[Result]:
    """``run(task)`` for every task, in order, in ``workers`` processes (in this one if ≤ 1).

    ``start(job)`` runs once in every process that computes, before its first
    task: it holds what all tasks share. ``tasks`` may be endless; stop
    iterating the results and the queued tasks are dropped.

    Examples
    --------
    >>> list(ordered_map(abs, [-2, 1, -3], start=print, job="ready", workers=1))
    ready
    [2, 1, 3]
    """
    tasks = iter(tasks)
    if workers <= 1:
        start(job)
        for task in tasks:
            yield run(task)
        return
    pool = ProcessPoolExecutor(workers, initializer=_start, initargs=(start, job, os.getpid()))
    try:
        # The first submissions fork the workers, and a KeyboardInterrupt in the
        # middle of any submission can leave the pool unable to shut down: Ctrl-C
        # waits for the end of each (`_ctrl_c_held`), and lands in `result()`.
        with _ctrl_c_held():
            pending = deque(pool.submit(run, task) for task in islice(tasks, ahead * workers))
        while pending:
            result = pending.popleft().result()
            for task in islice(tasks, 1):
                with _ctrl_c_held():
                    pending.append(pool.submit(run, task))
            yield result
    finally:
        # An interrupted run (Ctrl-C, an error, a consumer that stopped) must not
        # compute what is queued.
        pool.shutdown(wait=True, cancel_futures=True)
