"""Dask distributed: a LocalCluster by default, or any scheduler address from the config."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from pipeline.errors import StalledError, UserError

log = logging.getLogger(__name__)


@contextmanager
def dask_client(scheduler: str | None, *, n_workers: int, threads_per_worker: int, memory_limit: str,
                dashboard_address: str, connect_timeout_s: float = 30.0) -> Iterator:
    """A connected ``distributed.Client``; the cluster (if local) is closed on exit."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=f"{connect_timeout_s}s")
        except (OSError, TimeoutError) as e:
            raise UserError(f"cannot reach the Dask scheduler {scheduler!r} ({e}); start it or fix "
                            "dask.scheduler (leave it empty for a LocalCluster)") from None
        try:
            yield client
        finally:
            client.close()
        return
    import dask

    # Dask sets MALLOC_TRIM_THRESHOLD_=64 KiB in its workers, which (as setting any malloc threshold does) also
    # turns off glibc's adaptive mmap threshold: every buffer over 128 KiB (a GDAL read, a compressed chunk, a
    # sample) is then a fresh mmap, page-faulted and zeroed on each use and unmapped after (measured: ~1.5 s of
    # system time per 1,000 GDAL reads; Blosc compression 25% slower). Buffers up to 32 MiB (glibc's maximum)
    # come from the heap instead, and free memory above 64 MiB is still given back.
    # The nanny prefers the parent's os.environ to its config, and every nanny copies its settings into the
    # parent's os.environ, so an earlier LocalCluster in this process would override ours: set both while ours
    # starts, then restore the parent's environment.
    # Workers also log their state machine's warnings at ERROR only: its warnings are one line per task that
    # was cancelled while running, i.e. a screenful when the user stops a run with Ctrl-C.
    environ = {"MALLOC_TRIM_THRESHOLD_": str(64 * 2**20), "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20),
               "DASK_LOGGING": "{'distributed.worker.state_machine': 'error'}"}
    saved = {k: os.environ.get(k) for k in environ}
    os.environ.update(environ)
    # Worker processes start with Ctrl-C ignored (an ignored signal stays ignored across exec, and Python then
    # installs no KeyboardInterrupt handler): a terminal's Ctrl-C reaches the whole process group, and the
    # driver, not each worker, decides what happens (the cluster is closed, finished work kept).
    sigint = signal.signal(signal.SIGINT, signal.SIG_IGN) if on_main_thread() else None
    try:
        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in environ.items()}):
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                                   memory_limit=memory_limit, dashboard_address=dashboard_address, host="127.0.0.1")
    except (OSError, RuntimeError, ValueError) as e:  # a bad dask.* value: a port in use, an address not ours
        raise UserError(f"cannot start the local Dask cluster ({str(e)[:160]}); check dask.dashboard_address, "
                        "dask.memory_limit and dask.n_workers") from None
    finally:
        if sigint is not None:
            signal.signal(signal.SIGINT, sigint)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    client = Client(cluster, timeout=f"{connect_timeout_s}s")
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def on_main_thread() -> bool:
    """Whether this is the process's main thread (the only one that may set signal handlers)."""
    return threading.current_thread() is threading.main_thread()


def run_keys(prefix: str, names: Iterable[object]) -> list[str]:
    """Dask keys for one submission, ``<prefix>-<name>-<token>`` with a token new on every call: the scheduler
    forgets a released key asynchronously, so a key reused by the next run on the same client could be answered
    with the previous run's result."""
    token = uuid.uuid4().hex[:8]
    return [f"{prefix}-{name}-{token}" for name in names]


def finished(futures: list[Any], *, idle_timeout_s: float, what: str, knob: str) -> Iterator[Any]:
    """``futures`` as they finish (errors included: check ``future.status``). The deadline is for the *next*
    finished future, reset by each one, so a long run is never cut short; ``distributed.as_completed``'s own
    ``timeout`` counts from its start, which would stop a 250k-location run after that many seconds in all.
    Raises :class:`StalledError` naming ``what`` and the config ``knob`` when nothing finishes in time."""
    from distributed import as_completed

    ac = as_completed(futures)
    deadline = time.monotonic() + idle_timeout_s
    while True:
        if ac.has_ready():
            yield next(ac)
            deadline = time.monotonic() + idle_timeout_s
        elif ac.is_empty():
            return
        elif time.monotonic() > deadline:
            raise StalledError(f"no {what} finished in {idle_timeout_s:g} s ({ac.count()} left); check the workers "
                               f"on the dashboard, or raise {knob}. Finished work is kept: rerun to go on")
        else:
            time.sleep(0.02)


def dashboard_url(client) -> str:  # type: ignore[no-untyped-def]
    try:
        return str(client.dashboard_link)
    except Exception:  # no bokeh, or a remote scheduler without a dashboard
        return "(no dashboard)"
