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
