"""Build ``dataset.zarr`` and ``dataset.parquet`` from the staging store, one Dask task per shard."""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export import stats as st
from export import store as zs
from export.layout import BANDS, INDEX, LAYOUT_VERSION, STATE, STORE, n_shards, shard_key, shard_spans
from export.model import ExportSpec
from export.staging_io import scan_staging
from export.writer import ShardJob, ShardResult, marker_path, remove_leftovers, write_shard
from pipeline.cluster import finished, run_keys
from pipeline.errors import UserError

log = logging.getLogger(__name__)
LOCK = ".shard.lock"


@dataclass(frozen=True)
class ShardSummary:
    n_samples: int
    n_shards: int
    written: int
    kept: int
    nbytes_raw: int
    nbytes_stored: int
    seconds: float
    write_seconds: float
    """Wall time of the shard tasks alone (from the first submit to the last result)."""
    skipped_locations: dict[int, str] = field(default_factory=dict)
    task_seconds: dict[str, float] = field(default_factory=dict)
    """Summed over the written shards: time spent reading staging, on statistics, encoding, writing."""

    @property
    def ratio(self) -> float:
        return self.nbytes_raw / self.nbytes_stored if self.nbytes_stored else float("nan")


def creation_time(environ: Mapping[str, str] | None = None) -> str:
    """``SOURCE_DATE_EPOCH`` (reproducible builds) as ISO 8601 UTC if set, else now (to the second)."""
    env = os.environ if environ is None else environ
    raw = env.get("SOURCE_DATE_EPOCH", "").strip()
    if raw:
        try:
            t = dt.datetime.fromtimestamp(int(raw), dt.UTC)
        except ValueError:
            msg = f"SOURCE_DATE_EPOCH={raw!r} is not an integer; set it to Unix seconds or unset it"
            raise UserError(msg) from None
    else:
        t = dt.datetime.now(dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def software_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ssl4eo-curate")
    except PackageNotFoundError:
        return "0+unknown"


@contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """One shard stage per output folder at a time (released by the OS if the process dies)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOCK, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another shard stage is writing {out / STORE}; wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_dataset(
    out: Path,
    spec: ExportSpec,
    *,
    config_hash: str,
    created: str,
    version: str | None = None,
    client: Any = None,
    progress: Callable[[ShardResult], None] | None = None,
    result_timeout_s: float = 3600.0,
) -> ShardSummary:
    """Pack every complete staged location into ``<out>/dataset.zarr`` and write ``<out>/dataset.parquet``.

    ``client``: a ``distributed.Client`` to run one task per shard on; None runs them one by one in this process.
    ``result_timeout_s`` bounds the wait for the next finished shard task on ``client`` (a stall, not the run).
    Finished shards of an earlier run with the same shard key are kept. ``created`` goes into the root
    attributes only (see :func:`creation_time`).
    """
    t0 = time.perf_counter()
    out = Path(out)
    store_path, state = out / STORE, out / STATE
    scan = scan_staging(out, spec)
    records = scan.records
    if not records:
        raise UserError(f"no complete staged location with products {[p.name for p in spec.products]} in "
                        f"{out / 'staging'}; run 'ssl4eo download' first")
    with _exclusive(out):
        old = zs.read_root_attrs(store_path)
        if old is not None and old.get("layout_key") != spec.layout_key():
            zs.reset(store_path, state, "its layout (products, bands, shard size or codec) changed")
        state.mkdir(parents=True, exist_ok=True)
        remove_leftovers([store_path, state])
        n = len(records)
        root_attrs = {
            "layout_version": LAYOUT_VERSION, "layout_key": spec.layout_key(), "config_hash": config_hash,
            "software_version": version or software_version(), "created": created, "n_samples": n,
            "n_times": spec.n_times, "shard_size": spec.shard_size, "products": [p.name for p in spec.products],
            "sample_order": "location_id ascending; sample i is the same location in every product group",
            "index": INDEX, "catalog": "catalog/catalog.json",
        }
        zs.prepare(store_path, spec, records, root_attrs)
        _drop_shards_beyond(store_path, state, spec, n_shards(n, spec.shard_size))
        layout_key = spec.layout_key()
        jobs = []
        for span in shard_spans(n, spec.shard_size):
            recs = records[span.start : span.stop]
            key = shard_key(layout_key, span, [r.location_id for r in recs], [r.digest for r in recs])
            jobs.append(ShardJob(str(store_path), str(state), span, n, tuple(r.folder for r in recs),
                                 tuple(r.location_id for r in recs), key, spec))
        t1 = time.perf_counter()
        results = list(_run(jobs, client, progress, result_timeout_s))
        t2 = time.perf_counter()
        results.sort(key=lambda r: r.index)
        stats = {p.name: st.summary(st.merge([r.stats[p.name] for r in results]), p.bands) for p in spec.products}
        crcs = {p.name: [r.crc32c[p.name] for r in results] for p in spec.products}
        from export.index import write_index

        write_index(out / INDEX, spec, records)
        zs.finish(store_path, spec, root_attrs, stats, crcs)
    written = sum(r.written for r in results)
    summary = ShardSummary(n, len(jobs), written, len(jobs) - written, sum(r.nbytes_raw for r in results),
                           sum(r.nbytes_stored for r in results), time.perf_counter() - t0, t2 - t1,
                           dict(scan.skipped),
                           {k: round(sum(r.seconds.get(k, 0.0) for r in results), 3)
                            for k in ("read", "stats", "wait", "encode", "write")})
    log.info("sharded %d samples into %d shards (%d written, %d kept) in %.1f s", n, len(jobs), written,
             summary.kept, summary.seconds)
    return summary


def _drop_shards_beyond(store: Path, state: Path, spec: ExportSpec, keep: int) -> None:
    """Fewer samples than last time: the markers and statistics past the last shard go, and the shard folders
    (zarr's ``resize`` in ``store.prepare`` already deleted the shard files in them)."""
    for p in state.iterdir():
        head = p.name.split(".", 1)[0]
        if head.isdigit() and int(head) >= keep and p.name.endswith((".json", ".stats.npz")):
            p.unlink()
    for layout in spec.products:
        chunks = store / layout.name / BANDS / "c"
        for d in chunks.iterdir() if chunks.is_dir() else ():
            if d.name.isdigit() and int(d.name) >= keep:
                shutil.rmtree(d) if d.is_dir() else d.unlink()


def _run(jobs: list[ShardJob], client: Any, progress: Callable[[ShardResult], None] | None,
         timeout_s: float) -> Iterator[ShardResult]:
    if client is None:
        for job in jobs:
            r = write_shard(job)
            if progress:
                progress(r)
            yield r
        return
    keys = run_keys("ssl4eo-shard", (f"{j.span.index}-{j.key[:12]}" for j in jobs))
    futures = client.map(write_shard, jobs, key=keys, pure=False)
    knob = "dask.result_timeout_s (build_dataset's result_timeout_s)"
    for fut in finished(futures, idle_timeout_s=timeout_s, what="shard", knob=knob):
        r = fut.result()
        if progress:
            progress(r)
        yield r


__all__ = ["ShardSummary", "build_dataset", "creation_time", "marker_path", "software_version"]
