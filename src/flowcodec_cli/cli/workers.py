"""`--jobs` and `--threads`: where each file of encode and decode is coded, here or in one of N
worker processes, and with how many torch threads.

One process codes one file at a time, and torch's thread pool speeds up each operation of it
only so far (small tensors, many sequential steps in the entropy coder); separate processes, one
file each, use the other cores. They are `concurrent.futures` worker processes started with
"spawn": a fresh interpreter, since forking a process whose torch thread pools are running is
unsafe (the child inherits locks held by threads it does not have). Each worker loads a model
once (`codec.loaded.LoadedCodec` caches it per process) and keeps it for all its files. The
parent never imports torch: it plans, refuses, hands out files and prints, so every refusal
still comes before any worker starts.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator


def cores() -> int:
    """The CPUs this process may run on: its affinity mask (as `taskset` or a container's cpuset
    sets it) where the system has one, else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def thread_budget(processes: int, threads: int | None) -> int | None:
    """Torch threads per process: `threads` if given; for one process None (torch's own choice,
    as before --jobs existed); for several, the cores shared out (at least one each), so that
    processes × threads ≤ cores and no core is asked to run two threads at once."""
    if threads is not None or processes <= 1:
        return threads
    return max(1, cores() // processes)


_stopping = None   # in a worker: the pool's "start no more files" event (start_worker)


def set_threads(threads: int | None) -> None:
    """torch.set_num_threads(threads), unless None (torch keeps its default)."""
    if threads is not None:
        import torch
        torch.set_num_threads(threads)


def start_worker(threads: int | None, stopping) -> None:
    """The pool's initializer: the thread budget; the event the parent sets when it stops
    early (Ctrl-C), which the pool cannot do by itself: it hands each worker its next file
    before the last one is done, and such files are no longer cancellable; and an end with the
    parent, which a pool's workers do not have: a parent killed (`kill`, `timeout`, out of
    memory) would leave them waiting for work forever, each holding a model."""
    global _stopping
    _stopping = stopping
    threading.Thread(target=_exit_with, args=(multiprocessing.parent_process().sentinel,),
                     daemon=True).start()
    set_threads(threads)


def _exit_with(parent_sentinel) -> None:
    """Wait for the parent to end, then end this worker at once (a file it was writing leaves
    its hidden temporary file, never a partial output)."""
    multiprocessing.connection.wait([parent_sentinel])
    os._exit(1)


def timed(work: Callable[[str, str], dict], src: str, dst: str) -> dict:
    """`work(src, dst)`'s record with the seconds it took where it ran: a file's coding time,
    not the time it waited for a free worker. Module level, so that a pool can send it. In a
    worker of a pool that is stopping, no file is started (KeyboardInterrupt)."""
    if _stopping is not None and _stopping.is_set():
        raise KeyboardInterrupt
    start = time.perf_counter()
    record = work(src, dst)
    record["seconds"] = round(time.perf_counter() - start, 4)
    return record


@contextmanager
def records(jobs: list[tuple[str, str]], work, processes: int,
            threads: int | None) -> Iterator[Callable[[str, str], dict]]:
    """A function giving each job's timed record, or raising its failure: `work` called here
    (one process, or one job), or every job handed to min(processes, jobs) workers at once
    and each record awaited when asked for. `work` must then be picklable (a module-level
    callable). On leaving early (Ctrl-C, which a terminal sends to the workers too, so their
    files stop; or an error) no other job is started; writes are atomic, so none leaves a
    partial file."""
    processes = min(processes, len(jobs))
    threads = thread_budget(processes, threads)
    if processes <= 1:
        set_threads(threads)
        yield lambda src, dst: timed(work, src, dst)
        return
    spawn = multiprocessing.get_context("spawn")
    stopping = spawn.Event()
    pool = ProcessPoolExecutor(processes, mp_context=spawn, initializer=start_worker,
                               initargs=(threads, stopping))
    try:
        futures = {job: pool.submit(timed, work, *job) for job in jobs}
        yield lambda src, dst: futures[src, dst].result()
    finally:
        stopping.set()   # after a full run every job is done, and this changes nothing
        pool.shutdown(wait=True, cancel_futures=True)
