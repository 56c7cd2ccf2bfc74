"""Serverless sources: a stac-geoparquet file or an ItemCollection (JSON, or ndjson: an item a line), in memory.

The file is read once per process; matching rows are turned back into STAC items by stac-geoparquet (parquet) or
pystac (JSON), never by hand. A truncated or malformed item is skipped with a warning, not fatal.
"""

from __future__ import annotations

import io
import json
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pystac
import shapely

from pipeline.errors import SourceError
from pipeline.sources.base import SceneRef, SearchQuery, http_retry, scene_ref
from pipeline.sources.signing import href_signer, signed
from pipeline.warnings import SkippedItemWarning


@dataclass(frozen=True)
class _Rows:
    """The rows of one collection: row numbers and the columns a search filters on."""

    rows: np.ndarray
    t: np.ndarray
    """Acquisition time, ns since the epoch (NaT: the int64 minimum, never inside a window)."""
    cloud: np.ndarray
    platform: np.ndarray
    bounds: np.ndarray
    geoms: np.ndarray


class IndexSource:
    """In-memory search over a list of items (geometry, collection, datetime, cloud cover columns)."""

    def __init__(self, path: str, sign: str = "none", *, timeout_s: float = 30.0, retries: int = 4) -> None:
        self.path = path
        self._signer = href_signer(sign)
        self._lock = threading.Lock()
        self._refs: dict[int, SceneRef | None] = {}
        """Parsed rows, by row number: neighbouring locations search the same scenes over and over."""
        if path.lower().startswith(("http://", "https://")):
            src: Path | io.BytesIO = _download(path, timeout_s, retries)
            suffix = PurePosixPath(urlsplit(path).path).suffix.lower()
        else:
            src = Path(path)
            if not src.is_file():
                raise SourceError(f"source index {path!r} not found; build/serve the archive or fix source.url")
            suffix = src.suffix.lower()
        if suffix in (".parquet", ".geoparquet"):  # the suffixes SourceSpec.kind calls geoparquet
            self._load_parquet(src)
        elif suffix == ".ndjson":
            self._load_ndjson(src)
        else:
            self._load_json(src)

    def _load_parquet(self, src: Path | io.BytesIO) -> None:
        try:
            table = pq.read_table(src)
        except Exception as e:
            raise SourceError(f"cannot read stac-geoparquet {self.path!r} ({e}); rebuild the index") from None
        cols = set(table.column_names)
        if not {"id", "collection", "datetime", "geometry"} <= cols:
            raise SourceError(f"{self.path!r} is not a stac-geoparquet file (columns: {sorted(cols)[:8]}...)")
        self._table = table
        df = table.select([c for c in ("id", "collection", "datetime", "eo:cloud_cover", "platform")
                           if c in cols]).to_pandas()
        self._meta = self._frame(df, shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False)))
        self._items: list[dict] | None = None

    def _load_json(self, src: Path | io.BytesIO) -> None:
        try:
            data = json.loads(src.read_bytes() if isinstance(src, Path) else src.getvalue())
        except (OSError, ValueError) as e:  # ValueError: bad JSON, or bytes that are not UTF-8
            raise SourceError(f"cannot read ItemCollection {self.path!r} ({e}); fix or regenerate the file") from None
        feats = data.get("features") if isinstance(data, dict) else None
        if not isinstance(feats, list):
            raise SourceError(f"{self.path!r} is not an ItemCollection (no 'features' list)")
        self._index_features(feats)

    def _load_ndjson(self, src: Path | io.BytesIO) -> None:
        """One item a line; a truncated or malformed line is skipped with a warning and the rest is searched."""
        feats = []
        try:
            with src.open() if isinstance(src, Path) else io.TextIOWrapper(src, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        feats.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        warnings.warn(f"skipped line {n} of {self.path}: not a JSON item ({e})", SkippedItemWarning,
                                      stacklevel=3)
        except OSError as e:
            raise SourceError(f"cannot read {self.path!r} ({e}); fix or regenerate the file") from None
        self._index_features(feats)

    def _index_features(self, feats: list) -> None:
        bad = [i for i, f in enumerate(feats) if not isinstance(f, dict)]
        if bad:
            warnings.warn(f"skipped {len(bad)} feature(s) of {self.path} that are not JSON objects (first: #{bad[0]})",
                          SkippedItemWarning, stacklevel=3)
            feats = [f for f in feats if isinstance(f, dict)]
        self._items = feats
        self._table = None
        rows, geoms = [], []
        for f in feats:
            props = f.get("properties") if isinstance(f.get("properties"), dict) else {}
            rows.append({"id": f.get("id"), "collection": f.get("collection"), "datetime": props.get("datetime"),
                         "eo:cloud_cover": props.get("eo:cloud_cover"), "platform": props.get("platform")})
            try:
                geoms.append(shapely.geometry.shape(f["geometry"]))
            except Exception:
                geoms.append(None)
        self._meta = self._frame(pd.DataFrame(rows), np.array(geoms, dtype=object))

    @staticmethod
    def _frame(df: pd.DataFrame, geoms: np.ndarray) -> dict[str, _Rows]:
        """Per-collection numpy columns, so a search is a few vector comparisons (no pandas per call)."""
        t = pd.to_datetime(df["datetime"], utc=True, errors="coerce")
        cloud = (pd.to_numeric(df["eo:cloud_cover"], errors="coerce") if "eo:cloud_cover" in df
                 else pd.Series(np.nan, index=df.index))
        plat = df["platform"] if "platform" in df else pd.Series(None, index=df.index, dtype=object)
        ok = np.array([g is not None for g in geoms])
        bounds = np.full((len(geoms), 4), np.nan)
        if ok.any():
            bounds[ok] = shapely.bounds(np.asarray(list(geoms[ok])))
        out: dict[str, _Rows] = {}
        cols = df["collection"].to_numpy()
        t_ns = t.to_numpy(dtype="datetime64[ns]").astype(np.int64)
        for col in pd.unique(cols):
            sel = np.flatnonzero(cols == col)
            out[str(col)] = _Rows(sel, t_ns[sel], cloud.to_numpy(dtype=float)[sel],
                                  plat.to_numpy(dtype=object)[sel], bounds[sel], geoms[sel])
        return out

    def search(self, q: SearchQuery) -> list[SceneRef]:
        r = self._meta.get(q.collection)
        if r is None:
            return []
        lo, hi = pd.Timestamp(q.start).value, pd.Timestamp(q.end).value
        sel = (r.t >= lo) & (r.t <= hi)
        if q.max_cloud is not None:
            sel &= np.nan_to_num(r.cloud, nan=np.inf) <= q.max_cloud
        if q.platforms:
            sel &= np.isin(r.platform, q.platforms)
        x0, y0, x1, y1 = q.bbox
        b = r.bounds
        sel &= (b[:, 0] <= x1) & (b[:, 2] >= x0) & (b[:, 1] <= y1) & (b[:, 3] >= y0)  # NaN bounds: never
        cand = np.flatnonzero(sel)
        if cand.size:
            cand = cand[shapely.intersects(np.asarray(list(r.geoms[cand])), shapely.box(*q.bbox))]
        idx = r.rows[cand]
        idx = idx[: q.limit]
        with self._lock:  # worker threads share this source; parse each row once
            todo = np.array([i for i in idx if int(i) not in self._refs], dtype=np.int64)
            for i, d in zip(todo, self._dicts(todo) if todo.size else [], strict=True):
                try:
                    # each row is parsed once (under the lock), so pystac may consume the dict: no deepcopy; the
                    # fields scene_ref reads are stable across STAC 1.x, so no migration either
                    self._refs[int(i)] = scene_ref(pystac.Item.from_dict(d, migrate=False, preserve_dict=False))
                except Exception as e:  # a truncated/malformed item must not kill the run
                    self._refs[int(i)] = None
                    warnings.warn(f"skipped item {d.get('id')!r} of {self.path}: {type(e).__name__}: {e}",
                                  SkippedItemWarning, stacklevel=2)
            refs = [self._refs[int(i)] for i in idx]
        return signed([r for r in refs if r is not None], self._signer)

    def _dicts(self, idx: np.ndarray) -> list[dict]:
        if self._items is not None:
            return [self._items[i] for i in idx]
        from stac_geoparquet.arrow import stac_table_to_items

        return list(stac_table_to_items(self._table.take(idx)))


def _download(url: str, timeout_s: float, retries: int) -> io.BytesIO:
    """The whole index over http(s), read once per process: ``timeout_s`` per network wait, 30x that for the
    whole file, transient errors retried as catalog requests are (:func:`http_retry`)."""
    import requests
    from requests.adapters import HTTPAdapter

    deadline = time.monotonic() + 30 * timeout_s
    buf = io.BytesIO()
    with requests.Session() as session:
        session.mount("http://", HTTPAdapter(max_retries=http_retry(retries)))
        session.mount("https://", HTTPAdapter(max_retries=http_retry(retries)))
        try:
            with session.get(url, timeout=timeout_s, stream=True) as r:
                if r.status_code >= 400:
                    raise SourceError(f"cannot download source index {url!r} (HTTP {r.status_code}); fix source.url")
                for block in r.iter_content(1 << 20):
                    buf.write(block)
                    if time.monotonic() > deadline:
                        raise SourceError(f"source index {url!r} did not download within {30 * timeout_s:g} s; "
                                          "copy it to a local file and set source.url to that path")
        except requests.RequestException as e:  # refused, reset, timed out (after the retries)
            raise SourceError(f"cannot download source index {url!r} ({e}); check that it is reachable") from None
    buf.seek(0)
    return buf
