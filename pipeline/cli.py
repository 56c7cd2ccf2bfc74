"""The ``ssl4eo`` command: a thin argparse shell over the stage functions in ``pipeline.stages``.

Every stage accepts ``--config`` and ``--out``. A :class:`~pipeline.errors.UserError` becomes one line on stderr
and exit code 2. The CLI (never the library) configures logging.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from pathlib import Path

from pipeline.cluster import on_main_thread
from pipeline.errors import StalledError, UserError

STAGES = {
    # command: (module in pipeline.stages, help)
    "sample": ("sample", "place locations (cities + Gaussian offsets, exact overlap rejection)"),
    "download": ("download", "fetch four-season patches of every location into the staging store"),
    "shard": ("shard", "pack complete staged locations into the sharded Zarr v3 dataset"),
    "catalog": ("catalog", "write the STAC catalog of the outputs with provenance"),
    "run": ("run", "all stages: sample, download, shard, catalog"),
}


def _add_common(p: argparse.ArgumentParser, out: bool = True) -> None:
    p.add_argument("--config", type=Path, default=None, help="YAML config (default: the embedded default config)")
    if out:
        p.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: ./out)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ssl4eo", description="Curate SSL4EO-style pretraining corpora.")
    sub = ap.add_subparsers(dest="command", required=True)

    cfg = sub.add_parser("config", help="show the resolved config")
    cfg_sub = cfg.add_subparsers(dest="action", required=True)
    show = cfg_sub.add_parser("show", help="print the fully resolved config as YAML")
    _add_common(show, out=False)

    arch = sub.add_parser("archive", help="the embedded local archive")
    arch_sub = arch.add_subparsers(dest="action", required=True)
    b = arch_sub.add_parser("build", help="build the archive if missing or stale (cached afterwards)")
    _add_common(b, out=False)
    b.add_argument("--force", action="store_true", help="rebuild even if a current archive exists")
    s = arch_sub.add_parser("serve", help="serve the archive on loopback until interrupted")
    _add_common(s, out=False)
    s.add_argument("--api", choices=["geoparquet", "pgstac"], default=None, help="override archive.api")

    for name, (_, help_) in STAGES.items():
        _add_common(sub.add_parser(name, help=help_))

    for name, help_ in (("verify", "check a finished output folder"), ("report", "write an HTML run report")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("dir", type=Path, help="output folder of a run")
        p.add_argument("-v", "--verbose", action="count", default=0)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    for h in logging.root.handlers:
        h.setLevel(level)
    if args.verbose < 2:  # Dask and its web stack log every connection at INFO; keep the user's screen for us
        for name in ("distributed", "bokeh", "tornado", "stac_geoparquet"):
            logging.getLogger(name).setLevel(level)
    previous = signal.signal(signal.SIGINT, _quiet_interrupt) if on_main_thread() else None
    try:
        return _dispatch(args)
    except (UserError, StalledError) as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted; completed work is kept, rerun to resume", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _quiet_interrupt(signum: int, frame: object) -> None:
    """Ctrl-C: the cluster is torn down while the interrupt unwinds; its workers' complaints about being stopped
    mid-task are noise after the user asked for it (the one line printed above says what is kept)."""
    for name in ("distributed", "tornado", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    raise KeyboardInterrupt


def _dispatch(args: argparse.Namespace) -> int:
    from pipeline.config import config_to_yaml, load_config

    if args.command in ("verify", "report"):
        if not args.dir.is_dir():
            raise UserError(f"{str(args.dir)!r} is not a folder; pass the --out folder of a run")
        mod = importlib.import_module(f"pipeline.stages.{args.command}")
        return int(mod.main(args.dir))
    cfg = load_config(args.config)
    if args.command == "config":
        sys.stdout.write(config_to_yaml(cfg))
        return 0
    if args.command == "archive":
        from pipeline.stages import archive

        if args.action == "build":
            return archive.build(cfg, force=args.force)
        return archive.serve(cfg, api=args.api)
    mod = importlib.import_module(f"pipeline.stages.{STAGES[args.command][0]}")
    _check_out(args.out)
    return int(mod.main(cfg, args.out))


def _check_out(out: Path) -> None:
    """``--out`` must be a folder, or creatable as one, before any stage spends time on it."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {str(out)!r} is a file, not a folder; pass a folder (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {str(out)!r} cannot be created ({e.strerror}); pass a writable folder") from None


if __name__ == "__main__":
    sys.exit(main())
