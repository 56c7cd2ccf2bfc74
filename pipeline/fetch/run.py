"""Run the fetch stage on Dask: one task per location, staging writes on the workers, ledger on the driver.

A rerun does only what is left: locations with a complete staging folder are skipped, and so are locations whose
ledger entry is a data failure (no candidate, too cloudy, nodata, no S1 match); source errors are retried.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pipeline import staging
from pipeline.cluster import finished, run_keys
from pipeline.fetch.location import fetch_location
from pipeline.fetch.read import GdalReader
from pipeline.fetch.request import FetchParams, LocationTask
from pipeline.ledger import RETRYABLE, Entry, LedgerWriter, Reason, read_ledger
from pipeline.sources import open_source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskOutcome:
    location_id: int
    reason: str | None
    detail: str
    reads: int
    nbytes: int
    seconds: float


@dataclass
class DownloadSummary:
    total: int = 0
    skipped_complete: int = 0
    skipped_failed: int = 0
    complete: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    reads: int = 0
    nbytes: int = 0
    seconds: float = 0.0
    examples: dict[str, str] = field(default_factory=dict)

    @property
    def patches(self) -> int:
        return self.complete


def plan_todo(
    tasks: Iterable[LocationTask], done: set[int], ledger: dict[int, Entry], retry_failed: bool = False
) -> tuple[list[LocationTask], int, int]:
    """(tasks left, already complete, failed for good) from the staged ids and the ledger. Pure."""
    todo, n_done, n_failed = [], 0, 0
    for t in tasks:
        if t.location_id in done:
            n_done += 1
            continue
        e = ledger.get(t.location_id)
        if e is not None and e.status == "failed" and not retry_failed and Reason(e.reason) not in RETRYABLE:
            n_failed += 1
            continue
        todo.append(t)
    return todo, n_done, n_failed


@lru_cache(maxsize=1)
def _io_pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ssl4eo-io")


def fetch_and_stage(task: LocationTask, params: FetchParams, out: str, io_threads: int = 8) -> TaskOutcome:
    """Worker task: fetch one location and, if complete, write it to staging atomically. Never raises: whatever
    goes wrong becomes the location's reason, so one location cannot take the run down."""
    t0 = time.perf_counter()
    try:
        source = open_source(params.source)
        reader = GdalReader(timeout_s=params.timeout_s, retries=params.retries)
        r = fetch_location(task, params, source, reader, _io_pool(io_threads))
    except Exception as e:  # a bug, a source that cannot be opened, an unexpected library error
        log.exception("location %d failed unexpectedly", task.location_id)
        return TaskOutcome(task.location_id, Reason.SOURCE_ERROR.value, _describe(e), 0, 0,
                           time.perf_counter() - t0)
    nbytes = 0
    if r.ok:
        assert r.meta is not None and r.arrays is not None
        try:
            staging.write_location(Path(out), r.meta, r.arrays)
        except OSError as e:  # disk full, permissions: retried on the next run
            return TaskOutcome(task.location_id, Reason.WORKER_ERROR.value, f"staging write: {_describe(e)}",
                               r.reads, 0, time.perf_counter() - t0)
        nbytes = sum(a.nbytes for a in r.arrays.values())
    return TaskOutcome(task.location_id, None if r.ok else r.reason.value, r.detail, r.reads, nbytes,
                       time.perf_counter() - t0)


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:300]


def _outcome(fut, location_id: int) -> TaskOutcome:  # type: ignore[no-untyped-def]
    """The task's outcome, or a WORKER_ERROR one when the task itself errored or was cancelled (its worker died:
    KilledWorker; or it could not be run or unpickled), so the location is recorded and retried, and the run goes on."""
    if fut.status == "finished":
        return fut.result()
    why = _describe(fut.exception()) if fut.status == "error" else f"task {fut.status}"
    return TaskOutcome(location_id, Reason.WORKER_ERROR.value, why, 0, 0, 0.0)


def _reconcile(out: Path, done: set[int], ledger: dict[int, Entry]) -> None:
    """Staged locations the ledger does not call complete (the driver died between the worker's atomic staging
    write and its ledger line) get their entry now, so ledger and staging agree."""
    missing = sorted(i for i in done if ledger.get(i) is None or ledger[i].status != "complete")
    if missing:
        with LedgerWriter(out) as w:
            for i in missing:
                prev = ledger.get(i)
                w.write(Entry(i, "complete", None, "recovered from staging", (prev.attempt if prev else 0) + 1))


def run_fetch(client, tasks: list[LocationTask], params: FetchParams, out: Path, *,  # type: ignore[no-untyped-def]
              result_timeout_s: float = 900.0, retry_failed: bool = False, io_threads: int = 8,
              progress: Callable[[int, int, Counter[str]], None] | None = None) -> DownloadSummary:
    """Fetch every location not yet done; returns the summary (also recorded line by line in the ledger)."""
    t0 = time.perf_counter()
    out = Path(out)
    staging.clean_partial(out)
    done = staging.complete_ids(out) & {t.location_id for t in tasks}  # one scan of staging, one ledger read
    ledger_now = read_ledger(out)
    todo, n_done, n_failed = plan_todo(tasks, done, ledger_now, retry_failed)
    s = DownloadSummary(total=len(tasks), skipped_complete=n_done, skipped_failed=n_failed)
    attempts = {k: e.attempt for k, e in ledger_now.items()}
    _reconcile(out, done, ledger_now)
    if not todo:
        s.seconds = time.perf_counter() - t0
        return s
    futures = client.map(fetch_and_stage, todo, params=params, out=str(out), io_threads=io_threads,
                         key=run_keys("fetch", (t.location_id for t in todo)), pure=False)
    ids = {f.key: t.location_id for f, t in zip(futures, todo, strict=True)}
    status: Counter[str] = Counter()
    with LedgerWriter(out) as ledger:
        for fut in finished(futures, idle_timeout_s=result_timeout_s, what="location",
                            knob="dask.result_timeout_s"):
            o = _outcome(fut, ids[fut.key])
            attempt = attempts.get(o.location_id, 0) + 1
            if o.reason is None:
                ledger.write(Entry(o.location_id, "complete", None, "", attempt))
                s.complete += 1
                status["complete"] += 1
            else:
                ledger.write(Entry(o.location_id, "failed", o.reason, o.detail, attempt))
                s.failed[o.reason] += 1
                status[o.reason] += 1
                s.examples.setdefault(o.reason, f"location {o.location_id}: {o.detail}")
            s.reads += o.reads
            s.nbytes += o.nbytes
            if progress:
                progress(sum(status.values()), len(todo), status)
            fut.release()
    s.seconds = time.perf_counter() - t0
    return s
