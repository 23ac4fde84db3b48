"""Run the demo's stages as jobs on a pool of worker processes, each job as
soon as the jobs it needs are done.

One process per task left a core idle whenever one task had nothing left
to train while the other still had a queue of students; a pool that takes
any ready stage of any task keeps both cores busy until the end.
"""
import os
import signal
import sys
import threading
import traceback
from concurrent.futures import (FIRST_COMPLETED, Future,
                                ProcessPoolExecutor, wait)
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

# a job's function returns its result and the line the console shows
JobOutput = Tuple[Any, str]


@dataclass
class Job:
    """One stage to run.

    Args:
        key: A name unique among the jobs of one run.
        fn: A module-level function (it is pickled into a worker) that
            returns ``(result, console line)``.
        kwargs: Keyword arguments of ``fn``.
        env: Environment variables set before ``fn`` runs (the configs read
            data roots and checkpoints from them).
        after: Keys of the jobs that must be done first.
        prepare: Runs in the scheduling process once ``after`` is done,
            with every result so far (key -> result); returns updates of
            ``kwargs`` (e.g. a learning rate chosen from earlier results).
        priority: Lower first among ready jobs: jobs that others wait for
            go first.
    """
    key: str
    fn: Callable[..., JobOutput]
    kwargs: Dict[str, Any] = field(default_factory=dict)
    env: Dict[str, str] = field(default_factory=dict)
    after: Tuple[str, ...] = ()
    prepare: Optional[Callable[[Dict[str, Any]], Dict[str, Any]]] = None
    priority: int = 1


def run_job(fn: Callable[..., JobOutput], kwargs: Dict[str, Any],
            env: Dict[str, str]) -> JobOutput:
    """Run one job's function in this process, its ``env`` set first."""
    os.environ.update(env)
    return fn(**kwargs)


def _init_worker(threads: int) -> None:
    import torch
    torch.set_num_threads(threads)
    import mmkd  # noqa: F401  (registries, safe checkpoint loading)


class _InlineExecutor:
    """Runs each submitted call at once, in this process (``workers=1``)."""

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # handed to the caller, as a pool does
            future.set_exception(exc)
        return future

    def shutdown(self, *args, **kwargs) -> None:
        pass


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    # SIGTERM's default ends this process at once, without the clean-up of
    # run_jobs: its spawned workers would go on training unwatched
    raise SystemExit(f'shapes demo: stopped by signal {signum}')


def _check(jobs: Sequence[Job]) -> None:
    keys = [job.key for job in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError(f'job keys must be unique, got {keys}')
    for job in jobs:
        unknown = set(job.after) - set(keys)
        if unknown:
            raise ValueError(f'job {job.key!r} waits for unknown jobs '
                             f'{sorted(unknown)}')


def run_jobs(jobs: Sequence[Job], workers: int,
             report: Callable[[str], None],
             initializer: Optional[Callable[..., None]] = _init_worker,
             initargs: Tuple = ()) -> Dict[str, Any]:
    """Run ``jobs`` on ``workers`` spawned processes (in this process when
    ``workers`` is 1), each job once the jobs in its ``after`` are done,
    ready jobs by ``priority`` then in the order given. Stop everything as
    soon as one job fails, or when this process is asked to stop
    (``SIGTERM``, e.g. ``kill``, as ``Ctrl-C`` does): no worker goes on
    training after it.

    Args:
        jobs: The jobs.
        workers: Processes at a time.
        report: Called in this process with each finished job's console
            line.
        initializer: Runs once in each worker (default: torch threads
            ``initargs[0]``, mmkd imported).
        initargs: Arguments of ``initializer`` (default: the torch threads
            of a worker, ``cpu_count // workers``). With ``workers`` 1 the
            initializer runs in this process when they are given.

    Returns:
        dict: Job key -> the result its function returned.

    Raises:
        ValueError: When two jobs share a key or a job waits for an
            unknown one.
        SystemExit: When a job fails (after its traceback is printed), or
            on ``SIGTERM`` (the workers stopped first).
    """
    _check(jobs)
    if workers < 1:
        raise ValueError(f'workers must be at least 1, got {workers}')
    if workers == 1:
        if initializer is not None and initargs:
            initializer(*initargs)  # e.g. the torch threads, given
        executor = _InlineExecutor()
    else:
        if initializer is _init_worker and not initargs:
            initargs = (max(1, (os.cpu_count() or 1) // workers), )
        executor = ProcessPoolExecutor(
            workers, mp_context=get_context('spawn'),
            initializer=initializer, initargs=initargs)
    pending = list(jobs)
    running: Dict[Future, Job] = {}
    results: Dict[str, Any] = {}
    finished = False
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        while pending or running:
            ready = sorted(
                (j for j in pending if set(j.after) <= results.keys()),
                key=lambda j: (j.priority, pending.index(j)))
            for job in ready[:max(0, workers - len(running))]:
                pending.remove(job)
                kwargs = dict(job.kwargs)
                if job.prepare is not None:
                    kwargs.update(job.prepare(results))
                running[executor.submit(run_job, job.fn, kwargs,
                                        job.env)] = job
            if not running:
                raise ValueError('jobs wait for each other: '
                                 f'{[j.key for j in pending]}')
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                exc = future.exception()
                if exc is not None:
                    traceback.print_exception(exc)
                    sys.exit(f'shapes demo: stage {job.key} failed '
                             f'({type(exc).__name__}: {exc}); its traceback '
                             'is above, its own output in its work dir\'s '
                             'console.log')
                result, line = future.result()
                results[job.key] = result
                report(line)
        finished = True
    finally:
        if not finished and isinstance(executor, ProcessPoolExecutor):
            # a failed job leaves the others running: stop them too
            for process in list(getattr(executor, '_processes', {}).values()):
                process.terminate()
        executor.shutdown(wait=True, cancel_futures=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return {job.key: results[job.key] for job in jobs}

