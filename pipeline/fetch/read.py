"""The only module of the fetch stage that touches rasterio/GDAL: read one asset onto a location's patch grid.

GDAL does the reprojection/resampling (``WarpedVRT`` onto the exact patch grid: only the source blocks under the
patch are fetched, never the whole scene). Every HTTP request has a deadline (GDAL_HTTP_TIMEOUT); transient
errors (HTTP 429/5xx, resets, timeouts) are retried with exponential backoff and jitter up to a total deadline.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT

from pipeline.fetch.grid import PatchGrid
from pipeline.fetch.windows import nested_window

log = logging.getLogger(__name__)

_TRANSIENT = re.compile(
    r"(HTTP response code: (429|5\d\d))|timed out|timeout|Connection reset|Connection refused|"
    r"Couldn't connect|Recv failure|Send failure|SSL|transfer closed|Empty reply", re.IGNORECASE)
_SHORT_READ = re.compile(r"IReadBlock failed|Read error at|got \d+ bytes, expected", re.IGNORECASE)
"""GDAL's words for a block read that came back short; over HTTP that is a failed range request (5xx, reset,
timeout), whose status GDAL does not pass on, so for remote hrefs it counts as transient."""


class ReadError(Exception):
    """An asset could not be read (after retries for transient errors). ``transient`` tells which kind."""

    def __init__(self, href: str, message: str, transient: bool) -> None:
        super().__init__(f"{href}: {message}")
        self.href = href
        self.message = message
        self.transient = transient


@dataclass(frozen=True)
class ReadSpec:
    href: str
    bands: tuple[int, ...]
    """1-based band indexes within the asset."""
    resampling: str
    """'bilinear' for reflectance/backscatter, 'nearest' for masks and classes."""
    nodata: float | None


class Reader(Protocol):
    def read(self, spec: ReadSpec, grid: PatchGrid) -> np.ndarray:
        """(band, y, x) array on ``grid`` in the asset's dtype; nodata outside the source."""
        ...


@dataclass(frozen=True)
class GdalReader:
    timeout_s: float = 30.0
    retries: int = 4
    backoff_s: float = 0.25

    def env(self) -> rasterio.Env:
        return rasterio.Env(
            GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR",
            CPL_VSIL_CURL_ALLOWED_EXTENSIONS=".tif,.tiff,.TIF,.TIFF",
            GDAL_HTTP_TIMEOUT=str(max(1, int(self.timeout_s))),
            GDAL_HTTP_CONNECTTIMEOUT=str(max(1, int(self.timeout_s / 3))),
            GDAL_HTTP_MAX_RETRY="0",  # retried here, with jitter and a total deadline
            GDAL_HTTP_MERGE_CONSECUTIVE_RANGES="YES",
            GDAL_HTTP_MULTIPLEX="YES",
            VSI_CACHE="TRUE",
            GDAL_CACHEMAX=128,
            GDAL_NUM_THREADS="1",
        )

    def _thread_env(self) -> None:
        """Enter this reader's GDAL environment once per thread and keep it (entering one per read costs ~2 ms)."""
        if getattr(_TLS, "owner", None) == self:
            return
        old = getattr(_TLS, "env", None)
        if old is not None:
            old.__exit__(None, None, None)
        _TLS.env = self.env()
        _TLS.env.__enter__()
        _TLS.owner = self

    def read(self, spec: ReadSpec, grid: PatchGrid) -> np.ndarray:
        deadline = time.monotonic() + self.timeout_s * (self.retries + 1)
        attempt = 0
        while True:
            try:
                self._thread_env()  # every attempt: a failed attempt drops the environment
                return _read_once(spec, grid)
            except (RasterioIOError, OSError) as e:
                _drop_thread_env()  # GDAL keeps state of a failed file (sizes, handles); start clean next time
                msg = _error_text(e)
                transient = bool(_TRANSIENT.search(msg)) or (
                    spec.href.startswith(("http://", "https://", "/vsicurl")) and bool(_SHORT_READ.search(msg)))
                attempt += 1
                if not transient or attempt > self.retries or time.monotonic() > deadline:
                    raise ReadError(spec.href, msg[:300], transient) from None
                delay = min(self.backoff_s * 2 ** (attempt - 1), 8.0) * (0.5 + random.random())
                log.debug("transient read error (attempt %d) on %s: %s; retrying in %.2fs", attempt, spec.href,
                          msg[:120], delay)
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))


def _error_text(e: BaseException) -> str:
    """The error and its causes: rasterio reports a failed block read as 'Read failed. See previous exception for
    details.' and keeps GDAL's messages (which tile, how many bytes) in ``__cause__``."""
    texts: list[str] = []
    cur: BaseException | None = e
    while cur is not None and len(texts) < 6:
        if "See previous exception" not in str(cur):
            texts.append(str(cur))
        cur = cur.__cause__
    return "; ".join(texts) or str(e)


_TLS = threading.local()


def _drop_thread_env() -> None:
    env = getattr(_TLS, "env", None)
    if env is not None:
        env.__exit__(None, None, None)
    _TLS.env = None
    _TLS.owner = None


def _read_once(spec: ReadSpec, grid: PatchGrid) -> np.ndarray:
    with rasterio.open(spec.href) as src:
        nodata = spec.nodata if spec.nodata is not None else src.nodata
        dtype = src.dtypes[spec.bands[0] - 1]
        epsg = src.crs.to_epsg() if src.crs is not None else None
        nw = nested_window(tuple(src.transform), epsg, src.width, src.height, grid)
        if nw is not None:  # same CRS, nested lattice: a windowed read, resampled only when k > 1
            win = rasterio.windows.Window(nw.col, nw.row, nw.size, nw.size)
            if nw.factor == 1:
                return src.read(list(spec.bands), window=win)
            full = nw.size * nw.factor
            out = src.read(list(spec.bands), window=win, out_shape=(len(spec.bands), full, full),
                           resampling=Resampling[spec.resampling])
            return out[:, nw.crop:nw.crop + grid.px, nw.crop:nw.crop + grid.px]
        with WarpedVRT(
            src, crs=f"EPSG:{grid.epsg}", transform=Affine(*grid.transform), width=grid.px, height=grid.px,
            resampling=Resampling[spec.resampling], src_nodata=nodata, nodata=nodata,
            warp_extras={"NUM_THREADS": 1, "INIT_DEST": "NO_DATA" if nodata is not None else 0},
        ) as vrt:
            return vrt.read(list(spec.bands)).astype(dtype, copy=False)


def to_db(amplitude_or_power: np.ndarray, nodata: float | None, *, amplitude: bool, k_db: float = 0.0) -> np.ndarray:
    """SAR values in dB as float32, NaN where nodata: 20 log10(DN) - K for GRD amplitude, 10 log10(p) for power."""
    a = amplitude_or_power.astype(np.float32)  # float32 is what is stored; float64 would only cost time
    bad = ~np.isfinite(a) | (a <= 0)
    if nodata is not None:
        bad |= a == nodata
    with np.errstate(divide="ignore", invalid="ignore"):
        db = np.log10(a)
        db *= np.float32(20.0 if amplitude else 10.0)
        if amplitude:
            db -= np.float32(k_db)
    db[bad] = np.nan
    return db
