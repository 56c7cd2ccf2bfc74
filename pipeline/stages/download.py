"""``ssl4eo download``: fetch four-season patches of every sampled location into the staging store."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from pipeline.cluster import dashboard_url, dask_client
from pipeline.config import Config
from pipeline.fetch.run import DownloadSummary, run_fetch
from pipeline.stages.common import fetch_params, human_bytes, read_tasks, resolved_source


def main(cfg: Config, out: Path) -> int:
    s = download(cfg, out)
    print(format_summary(s, out))
    return 0


def download(cfg: Config, out: Path) -> DownloadSummary:
    from tqdm import tqdm

    with resolved_source(cfg) as spec:
        tasks = read_tasks(out)
        params = fetch_params(cfg, spec)
        d = cfg.dask
        with dask_client(d.scheduler, n_workers=d.n_workers, threads_per_worker=d.threads_per_worker,
                         memory_limit=d.memory_limit, dashboard_address=d.dashboard_address) as client:
            print(f"dask dashboard: {dashboard_url(client)}", flush=True)
            bar = tqdm(total=None, desc="download", unit="loc", file=sys.stderr, disable=None)

            def progress(done: int, total: int, status: Counter[str]) -> None:
                bar.total = total
                bar.n = done
                bar.set_postfix({k: v for k, v in status.most_common(3)}, refresh=False)
                bar.refresh()

            try:
                return run_fetch(client, tasks, params, out, result_timeout_s=d.result_timeout_s,
                                 io_threads=d.io_threads, progress=progress)
            finally:
                bar.close()


def format_summary(s: DownloadSummary, out: Path) -> str:
    attempted = s.total - s.skipped_complete - s.skipped_failed
    lines = [
        f"download: {s.complete} complete, {sum(s.failed.values())} failed of {attempted}"
        f" attempted ({s.skipped_complete} already complete, {s.skipped_failed} failed earlier) in {s.seconds:.1f} s;"
        f" {s.reads} asset reads, {human_bytes(s.nbytes)} staged in {Path(out) / 'staging'}",
    ]
    for reason, n in s.failed.most_common():
        lines.append(f"  failed: {reason}: {n}  e.g. {s.examples.get(reason, '')[:150]}")
    return "\n".join(lines)
