"""The LocalCluster the stages start: worker processes get malloc settings that keep large buffers cheap."""

from __future__ import annotations

import os

import pytest

from pipeline.cluster import dask_client


def _malloc_env() -> tuple[str | None, str | None]:
    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("MALLOC_MMAP_THRESHOLD_")


def test_local_workers_keep_buffers_up_to_32_mib_on_the_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    # what any earlier LocalCluster leaves in this process: its nanny copies Dask's default into os.environ
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    with dask_client(None, n_workers=1, threads_per_worker=1, memory_limit="1GiB",
                     dashboard_address="127.0.0.1:0") as client:
        envs = set(client.run(_malloc_env).values())
    # Dask's own default (64 KiB trim, which also disables glibc's adaptive mmap threshold) would give
    # ("65536", None): every buffer over 128 KiB a fresh, zeroed mmap
    assert envs == {(str(64 * 2**20), str(32 * 2**20))}
    assert _malloc_env() == ("65536", None)  # this process's environment is as it was


# --- waiting on a run's tasks -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_worker():  # type: ignore[no-untyped-def]
    """A real process cluster, one single-threaded worker, that gives up on a task whose worker died once."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address=None, memory_limit="1GiB") as cluster, Client(cluster) as c:
        yield c


def _nap(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


def test_the_deadline_is_for_the_next_result_not_the_whole_run(one_worker) -> None:  # type: ignore[no-untyped-def]
    from distributed import TimeoutError as DaskTimeout
    from distributed import as_completed

    from pipeline.cluster import finished

    # six 0.4 s tasks one after another: 2.4 s in all, never more than 0.4 s between two results
    futures = one_worker.map(_nap, [0.4] * 6, pure=False)
    assert [f.result() for f in finished(futures, idle_timeout_s=1.5, what="nap", knob="k")] == [0.4] * 6
    futures = one_worker.map(_nap, [0.4] * 6, pure=False)  # what as_completed's own timeout would have done
    with pytest.raises(DaskTimeout):
        for _ in as_completed(futures, timeout=1.5):
            pass
    one_worker.cancel(futures)


def test_a_stall_stops_with_the_knob_named(one_worker) -> None:  # type: ignore[no-untyped-def]
    from pipeline.cluster import finished
    from pipeline.errors import StalledError

    futures = one_worker.map(_nap, [0.1, 4.0], pure=False)
    got = []
    with pytest.raises(StalledError, match=r"no nap finished in 1 s \(1 left\).*raise dask.result_timeout_s"):
        for f in finished(futures, idle_timeout_s=1.0, what="nap", knob="dask.result_timeout_s"):
            got.append(f.result())
    assert got == [0.1]
    one_worker.cancel(futures)


def _die() -> None:
    os._exit(1)


def test_a_task_whose_worker_dies_is_recorded_not_raised(one_worker) -> None:  # type: ignore[no-untyped-def]
    from pipeline.cluster import finished
    from pipeline.fetch.run import _outcome
    from pipeline.ledger import RETRYABLE, Reason

    fut = one_worker.submit(_die, pure=False)
    (done,) = finished([fut], idle_timeout_s=60, what="task", knob="k")
    o = _outcome(done, 42)
    assert (o.location_id, o.reason) == (42, Reason.WORKER_ERROR.value)
    assert "KilledWorker" in o.detail
    assert Reason.WORKER_ERROR in RETRYABLE
    assert one_worker.submit(_nap, 0.0, pure=False).result(timeout=60) == 0.0  # the nanny restarted the worker
