"""``ssl4eo shard``: pack the complete staged locations into ``<out>/dataset.zarr`` (+ ``dataset.parquet``)."""

from __future__ import annotations

import sys
from pathlib import Path

from export.codecs import CodecSpec
from export.layout import stable_hash
from export.model import ExportSpec, product_layout
from export.shard import ShardSummary, build_dataset, creation_time
from export.writer import ShardResult
from pipeline.cluster import dashboard_url, dask_client
from pipeline.config import Config
from pipeline.errors import UserError
from pipeline.stages.common import product_requests
from pipeline.staging import iter_complete


def config_hash(cfg: Config) -> str:
    """Stable hash of what decides the data: the resolved config (canonical JSON) without the sections that only
    say where and how fast it ran (``archive`` holds a home-directory path, ``dask`` the machine's cluster), so the
    same corpus made on two machines carries the same hash."""
    return stable_hash(cfg.model_dump(mode="json", exclude={"archive", "dask"}))


def export_spec(cfg: Config) -> ExportSpec:
    """The export layout: products exactly as the fetch stage stages them, codec and shards from ``export:``."""
    layouts = [product_layout(r.name, r.bands, r.patch_px, dtype=r.dtype, nodata=r.nodata, collection=r.collection)
               for r in product_requests(cfg)]
    e = cfg.export
    return ExportSpec(tuple(layouts), e.shard_size, CodecSpec(e.compressor, e.level, e.shuffle),
                      tuple(cfg.seasons.reference_dates), e.stats_stride)


def shard(cfg: Config, out: Path) -> ShardSummary:
    from tqdm import tqdm

    spec = export_spec(cfg)
    if next(iter_complete(out), None) is None:  # before a cluster is started for nothing
        raise UserError(f"no complete staged location in {Path(out) / 'staging'}; run 'ssl4eo download' first")
    d = cfg.dask
    # A shard task alternates CPU (statistics, compression) and waits on disk (staging reads, fsync); two tasks
    # per worker process keep the cores busy through the waits (measured: ~1.5x over one) without thrashing the
    # disk. A task streams its shard, so it holds a few samples, not the shard, in memory.
    threads = min(d.threads_per_worker, 2)
    with dask_client(d.scheduler, n_workers=d.n_workers, threads_per_worker=threads, memory_limit=d.memory_limit,
                     dashboard_address=d.dashboard_address) as client:
        print(f"dask dashboard: {dashboard_url(client)}", flush=True)
        bar = tqdm(desc="shard", unit="shard", file=sys.stderr, disable=None)

        def progress(r: ShardResult) -> None:
            bar.update(1)

        try:
            return build_dataset(out, spec, config_hash=config_hash(cfg), created=creation_time(), client=client,
                                 result_timeout_s=cfg.dask.result_timeout_s,
                                 progress=progress)
        finally:
            bar.close()


def format_summary(s: ShardSummary, out: Path) -> str:
    mb = s.nbytes_raw / 1e6
    line = (f"shard: {s.n_samples} samples in {s.n_shards} shards ({s.written} written, {s.kept} kept) "
            f"-> {Path(out) / 'dataset.zarr'} in {s.seconds:.1f} s")
    if s.written and s.write_seconds > 0:
        line += f"; {mb:.0f} MB raw at {mb / s.write_seconds:.0f} MB/s, ratio {s.ratio:.2f}"
    if s.skipped_locations:
        loc, why = next(iter(s.skipped_locations.items()))
        line += f"\n  left out {len(s.skipped_locations)} staged location(s) lacking a product, e.g. {loc:07d}: {why}"
    return line


def main(cfg: Config, out: Path) -> int:
    print(format_summary(shard(cfg, out), out))
    return 0
