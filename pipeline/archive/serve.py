"""Serve the embedded archive on loopback: COGs over HTTP with range requests, and its items three ways.

``serve_archive(root, api=...)`` starts real server processes on 127.0.0.1 and yields the
:class:`Endpoints`:

- ``http_base``: the COG server (Starlette ``StaticFiles`` under uvicorn, in a child process): HTTP Range -> 206,
  HEAD, ETag; ``latency_ms`` delays every response, to mimic a remote archive;
- ``geoparquet``: the archive's items, asset hrefs made absolute ``http_base/<relative path>``, as a
  stac-geoparquet file (collections in its metadata), for serverless search;
- ``item_collection``: the same items as a STAC ItemCollection JSON;
- ``stac_url`` (``api="pgstac"`` only): stac-fastapi-pgstac on a throwaway PostgreSQL + PostGIS cluster loaded
  with the same items, the stack Planetary Computer runs.

Every wait shares one deadline; a failure raises :class:`~pipeline.errors.ArchiveError` naming the step, the fix
and the end of the failing process's log. On exit (also on errors) every process group is stopped and the
temporary folder removed. ``serve_forever`` is the body of ``ssl4eo archive serve``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import json
import logging
import os
import posixpath
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO
from urllib.parse import quote, urlsplit

from pipeline.archive.httpd import (
    LOOPBACK,
    Child,
    Deadline,
    bind_loopback,
    json_ok,
    start_cog_server,
    start_stac_api,
    stop_all,
    wait_http,
)
from pipeline.errors import ArchiveError

log = logging.getLogger(__name__)

Api = Literal["geoparquet", "pgstac"]
REBUILD = "rebuild it with 'ssl4eo archive build --force' (make archive)"


@dataclass(frozen=True)
class Endpoints:
    """Where a served archive answers. Everything is on 127.0.0.1 and lives as long as the context."""

    http_base: str
    """Base URL of the COG server, no trailing slash: ``f"{http_base}/{relative path under the root}"``."""
    stac_url: str | None
    """Root of the STAC API (stac-fastapi-pgstac) with api='pgstac'; None with api='geoparquet'."""
    geoparquet: Path
    """stac-geoparquet file of the items with absolute http asset hrefs (collections in its metadata)."""
    item_collection: Path
    """The same items as a STAC ItemCollection (GeoJSON FeatureCollection) file."""


@dataclass(frozen=True)
class ArchiveContents:
    marker: dict[str, Any]
    collections: dict[str, Path]
    """Collection id -> its STAC Collection JSON file."""
    items: list[dict[str, Any]]


def read_archive(root: Path) -> ArchiveContents:
    """The archive's marker, collections and items; ArchiveError when any part is missing or malformed."""
    if not root.is_dir():
        raise ArchiveError(f"archive folder {root} does not exist; build it with 'ssl4eo archive build' (make archive)")
    marker_path = root / "ARCHIVE.json"
    if not marker_path.is_file():
        raise ArchiveError(
            f"archive at {root} is incomplete (no ARCHIVE.json, which the builder writes last); {REBUILD}"
        )
    try:
        marker = json.loads(marker_path.read_text())
        ids = [str(c) for c in marker["collections"]]
    except (ValueError, KeyError, TypeError) as e:
        raise ArchiveError(f"{marker_path} is malformed ({e}); {REBUILD}") from None
    collections: dict[str, Path] = {}
    for cid in ids:
        path = root / "stac" / "collections" / f"{cid}.json"
        if not path.is_file():
            raise ArchiveError(f"archive collection {cid!r} is listed in ARCHIVE.json but {path} is missing; {REBUILD}")
        collections[cid] = path
    items_path = root / "stac" / "items.ndjson"
    if not items_path.is_file():
        raise ArchiveError(f"archive items {items_path} are missing; {REBUILD}")
    items: list[dict[str, Any]] = []
    with items_path.open() as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError as e:
                raise ArchiveError(f"{items_path} line {n} is not JSON ({e}); {REBUILD}") from None
            if item.get("collection") not in collections:
                raise ArchiveError(
                    f"{items_path} line {n}: item {item.get('id')!r} is in collection {item.get('collection')!r}, "
                    f"which ARCHIVE.json does not list; {REBUILD}"
                )
            items.append(item)
    return ArchiveContents(marker, collections, items)


def localize_href(href: str, http_base: str, root: Path) -> str:
    """A relative (or inside-the-root absolute) href as a URL on the COG server; other URLs unchanged."""
    if urlsplit(href).scheme:
        return href
    if os.path.isabs(href):
        try:
            href = Path(href).resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return href
    rel = posixpath.normpath(href.replace(os.sep, "/"))
    if rel.startswith("../") or rel == "..":
        raise ArchiveError(f"asset href {href!r} points outside the archive folder {root}; {REBUILD}")
    return f"{http_base}/{quote(rel.lstrip('/'), safe='/')}"


def localize_item(item: dict[str, Any], http_base: str, root: Path) -> dict[str, Any]:
    """A copy of ``item`` with asset hrefs on the COG server. A relative self link becomes the file URI of the item's
    static JSON in the archive (provenance that outlives the servers); other relative links are dropped."""
    out = copy.deepcopy(item)
    for asset in out.get("assets", {}).values():
        asset["href"] = localize_href(asset["href"], http_base, root)
    links = []
    for ln in out.get("links", []):
        href = str(ln.get("href", ""))
        if urlsplit(href).scheme:
            links.append(ln)
        elif ln.get("rel") == "self" and (root / href).is_file():
            links.append(dict(ln, href=(root / href).resolve().as_uri()))
    out["links"] = links
    return out


def write_indexes(items: list[dict[str, Any]], collections: dict[str, Path], folder: Path) -> tuple[Path, Path, Path]:
    """Write the localized items as stac-geoparquet, ItemCollection JSON and ndjson; returns the three paths."""
    import stac_geoparquet.arrow

    parquet, item_collection, ndjson = folder / "items.parquet", folder / "items.json", folder / "items.ndjson"
    with ndjson.open("w") as f:
        for item in items:
            f.write(json.dumps(item, separators=(",", ":")) + "\n")
    item_collection.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    colls = {cid: json.loads(p.read_text()) for cid, p in collections.items()}
    reader = stac_geoparquet.arrow.parse_stac_items_to_arrow(items, schema="FullFile")
    stac_geoparquet.arrow.to_parquet(reader, parquet, collections=colls)
    return parquet, item_collection, ndjson


@contextlib.contextmanager
def _serving(
    root: Path, api: Api, http_port: int, latency_ms: float, deadline_s: float
) -> Iterator[tuple[Endpoints, list[Child]]]:
    if api not in ("geoparquet", "pgstac"):
        raise ValueError(f"api must be 'geoparquet' or 'pgstac', not {api!r}")
    if latency_ms < 0:
        raise ValueError(f"latency_ms must be >= 0, not {latency_ms}")
    t0 = time.perf_counter()
    root = Path(root).resolve()
    deadline = Deadline(deadline_s)
    contents = read_archive(root)
    if api == "pgstac":
        from pipeline.archive.pgstac import PgCluster, preflight

        pg_bin = preflight()  # missing PostgreSQL or PostGIS: fail before starting anything

    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="ssl4eo-archive-serve-"))
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        children: list[Child] = []
        cluster = None
        # Stops the servers together (PostgreSQL's fast shutdown does not wait for the API's connections).
        stack.callback(lambda: stop_all([*children, *([cluster.child] if cluster and cluster.child else [])]))
        with contextlib.closing(bind_loopback(http_port)) as cog_sock:
            http_base = f"http://{LOOPBACK}:{cog_sock.getsockname()[1]}"
            cog = start_cog_server(root, cog_sock, latency_ms, tmp / "cog-server.log", tmp)
        children.append(cog)

        pg_future: concurrent.futures.Future[None] | None = None
        if api == "pgstac":
            tmp.chmod(0o711)  # the postgres user must reach tmp/pg
            cluster = PgCluster(tmp / "pg", pg_bin)
            pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pg-start")
            stack.callback(pool.shutdown, wait=True)  # runs before stop_all: nothing starts after the stop
            pg_future = pool.submit(cluster.start, deadline)

        items = [localize_item(it, http_base, root) for it in contents.items]
        parquet, item_collection, ndjson = write_indexes(items, contents.collections, tmp)
        wait_http(cog, f"{http_base}/ARCHIVE.json", deadline, "check that the archive folder is readable")
        log.info("COG server at %s, indexes written (%.2f s)", http_base, time.perf_counter() - t0)

        stac_url = None
        if cluster is not None and pg_future is not None:
            try:
                pg_future.result(timeout=deadline.left() + 5)  # its own waits end at the deadline
            except concurrent.futures.TimeoutError:
                raise ArchiveError(f"PostgreSQL did not start within the {deadline_s:g} s startup deadline; "
                                   "the machine may be overloaded: raise deadline_s and retry") from None
            assert cluster.child is not None
            # The API process starts (imports, connection pool) while pypgstac migrates and loads; it is asked
            # for the collections only once they are loaded.
            with contextlib.closing(bind_loopback()) as api_sock:
                stac_url = f"http://{LOOPBACK}:{api_sock.getsockname()[1]}"
                stac = start_stac_api(api_sock, cluster.client_env(), tmp / "stac-api.log", tmp)
            children.append(stac)
            cluster.load(list(contents.collections.values()), ndjson, deadline)
            log.info("PostgreSQL on port %d loaded with %d items (%.2f s)", cluster.port, len(items),
                     time.perf_counter() - t0)
            wanted = set(contents.collections)

            def has_collections(status: int, body: bytes) -> bool:
                doc = json_ok(status, body)
                return doc is not None and wanted <= {c.get("id") for c in doc.get("collections", [])}

            wait_http(stac, f"{stac_url}/collections", deadline, "check the PostgreSQL and pgstac logs",
                      has_collections)
        log.info("archive %s served (api=%s) in %.2f s", root, api, time.perf_counter() - t0)
        yield Endpoints(http_base, stac_url, parquet, item_collection), [
            *children, *([cluster.child] if cluster and cluster.child else [])]
        log.debug("stopping the archive servers")


@contextlib.contextmanager
def serve_archive(
    root: Path,
    *,
    api: Api,
    http_port: int = 0,
    latency_ms: float = 0.0,
    deadline_s: float = 90.0,
) -> Iterator[Endpoints]:
    """Serve the archive at ``root`` on 127.0.0.1 while the context is open; yields its :class:`Endpoints`.

    ``api='geoparquet'`` starts only the COG server and writes the indexes; ``api='pgstac'`` also starts
    PostgreSQL + PostGIS and stac-fastapi-pgstac (needs the Debian packages: ``make system-deps``).
    ``http_port`` 0 picks a free port; ``latency_ms`` delays every COG server response; ``deadline_s`` bounds
    the whole startup. Safe to call from any thread; installs no signal handlers.
    """
    with _serving(Path(root), api, http_port, latency_ms, deadline_s) as (endpoints, _children):
        yield endpoints


def serve_forever(root: Path, api: Api = "geoparquet", http_port: int = 0, *, out: TextIO | None = None) -> int:
    """``ssl4eo archive serve``: serve until Ctrl-C (or SIGTERM), then stop everything; returns the exit code."""
    out = out or sys.stdout
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if on_main else None

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    if on_main:
        signal.signal(signal.SIGTERM, interrupt)
    try:
        with _serving(Path(root), api, http_port, 0.0, 90.0) as (ep, children):
            print(f"archive     {Path(root).resolve()}", file=out)
            marker = json.loads((Path(root) / "ARCHIVE.json").read_text())
            print(f"collections {', '.join(marker['collections'])}", file=out)
            print(f"STAC API    {ep.stac_url or '(none: api=geoparquet; use the stac-geoparquet index)'}", file=out)
            print(f"geoparquet  {ep.geoparquet}", file=out)
            print(f"items       {ep.item_collection}", file=out)
            print(f"COG base    {ep.http_base}/", file=out)
            print("serving on 127.0.0.1; press Ctrl-C to stop", file=out, flush=True)
            while True:
                for child in children:
                    if not child.alive():
                        raise child.fail(f"exited unexpectedly (code {child.proc.returncode})",
                                         "see the log above and restart 'ssl4eo archive serve'")
                time.sleep(0.5)
    except KeyboardInterrupt:
        print("stopped", file=out, flush=True)
        return 0
    finally:
        if on_main and previous is not None:
            signal.signal(signal.SIGTERM, previous)
