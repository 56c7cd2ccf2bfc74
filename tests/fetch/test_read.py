"""GdalReader against real archive COGs: a transient HTTP failure in the middle of a read is retried, a corrupt or
missing COG is a permanent error whose message says what went wrong."""

from __future__ import annotations

import http.server
import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pipeline.archive.plan import Scene, plan_archive
from pipeline.fetch.grid import PatchGrid
from pipeline.fetch.read import GdalReader, ReadError, ReadSpec


def _scene() -> Scene:
    return next(s for s in plan_archive() if s.product == "s2_l2a" and s.site == "Munich")


def _cog(archive_root: Path, key: str = "B04") -> Path:
    s = _scene()
    return archive_root / "cogs" / s.collection / s.item_id / f"{key}.tif"


def _grid() -> PatchGrid:
    """A 64 px patch in the middle of the scene, on its 10 m lattice."""
    x0, y0, x1, y1 = _scene().bounds
    cx, cy = round((x0 + x1) / 2 / 60) * 60, round((y0 + y1) / 2 / 60) * 60
    return PatchGrid(_scene().epsg, cx - 320.0, cy + 320.0, 10.0, 64)


@dataclass
class Flaky:
    url: str
    data_requests: int = 0
    failed: int = 0


@contextmanager
def flaky_server(path: Path, fail_first: int) -> Iterator[Flaky]:
    """Serves one file on loopback with HTTP ranges; the first ``fail_first`` range requests for data (past the
    header GDAL reads on open) answer 503, as an overloaded object store does."""
    data = path.read_bytes()
    state = Flaky("")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()

        def do_GET(self) -> None:
            m = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
            a, b = (int(m.group(1)), int(m.group(2))) if m else (0, len(data) - 1)
            if a > 0:
                state.data_requests += 1
                if state.failed < fail_first:
                    state.failed += 1
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            chunk = data[a: b + 1]
            self.send_response(206 if m else 200)
            if m:
                self.send_header("Content-Range", f"bytes {a}-{a + len(chunk) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(chunk)))
            self.end_headers()
            self.wfile.write(chunk)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{srv.server_address[1]}/{path.name}"
    try:
        yield state
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def test_transient_failures_during_block_reads_are_retried(archive_root: Path) -> None:
    cog = _cog(archive_root)
    want = GdalReader().read(ReadSpec(str(cog), (1,), "bilinear", 0), _grid())
    # GDAL itself re-asks a couple of times without backoff; more failures than that need our retry
    with flaky_server(cog, fail_first=6) as srv:
        got = GdalReader(timeout_s=5.0, retries=6, backoff_s=0.01).read(ReadSpec(srv.url, (1,), "bilinear", 0),
                                                                          _grid())
    assert srv.failed == 6 and srv.data_requests > 6
    np.testing.assert_array_equal(got, want)


def test_transient_failures_beyond_the_retries_give_a_transient_read_error(archive_root: Path) -> None:
    with flaky_server(_cog(archive_root), fail_first=10**6) as srv, pytest.raises(ReadError) as e:
        GdalReader(timeout_s=5.0, retries=2, backoff_s=0.01).read(ReadSpec(srv.url, (1,), "bilinear", 0), _grid())
    assert e.value.transient and e.value.href == srv.url
    assert "IReadBlock failed" in e.value.message and "See previous exception" not in e.value.message


def test_corrupt_cog_is_a_permanent_error_that_says_why(archive_root: Path, tmp_path: Path) -> None:
    bad = tmp_path / "B04.tif"
    shutil.copyfile(_cog(archive_root), bad)
    with open(bad, "r+b") as f:  # a COG keeps its overviews first: a quarter holds no full-resolution tile
        f.truncate(bad.stat().st_size // 4)
    t0 = time.perf_counter()
    with pytest.raises(ReadError) as e:  # one retry would sleep >= 2.5 s
        GdalReader(timeout_s=5.0, retries=3, backoff_s=5.0).read(ReadSpec(str(bad), (1,), "bilinear", 0), _grid())
    assert time.perf_counter() - t0 < 2.0, "a corrupt local file must not be retried"
    assert not e.value.transient
    assert re.search(r"IReadBlock failed.*TIFFReadEncodedTile", e.value.message), e.value.message


def test_missing_cog_on_the_server_is_not_retried(served_geoparquet) -> None:
    url = f"{served_geoparquet.http_base}/cogs/sentinel-2-l2a/NO_SUCH_ITEM/B04.tif"
    t0 = time.perf_counter()
    with pytest.raises(ReadError) as e:  # one retry would sleep >= 2.5 s
        GdalReader(timeout_s=5.0, retries=3, backoff_s=5.0).read(ReadSpec(url, (1,), "bilinear", 0), _grid())
    assert time.perf_counter() - t0 < 2.0 and not e.value.transient
    assert "404" in e.value.message or "No such file" in e.value.message or "not recognized" in e.value.message, \
        e.value.message
