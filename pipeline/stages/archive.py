"""``ssl4eo archive build|serve``."""

from __future__ import annotations

import sys

from pipeline.config import Config


def build(cfg: Config, force: bool = False) -> int:
    from pipeline.archive.build import build_archive

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\rarchive: {done}/{total} scenes", end="", file=sys.stderr, flush=True)

    s = build_archive(cfg.archive.path, force=force, progress=progress)
    if sys.stderr.isatty() and s.built:
        print(file=sys.stderr)
    verb = f"built in {s.seconds:.0f} s" if s.built else "is current (cached)"
    print(f"archive {verb}: {s.root} — {s.n_items} items, {s.n_files} files, {s.bytes / 2**20:.0f} MiB")
    return 0


def serve(cfg: Config, api: str | None = None) -> int:
    from pipeline.archive.serve import serve_forever
    from pipeline.stages.common import require_archive

    require_archive(cfg)
    return serve_forever(cfg.archive.path, api=api or cfg.archive.api, http_port=cfg.archive.http_port)
