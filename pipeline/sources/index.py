"""Serverless sources: a stac-geoparquet file or an ItemCollection (JSON, or ndjson: an item a line), in memory.

The file is read once per process; matching rows are turned back into STAC items by stac-geoparquet (parquet) or
pystac (JSON), never by hand. A truncated or malformed item is skipped with a warning, not fatal.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pystac
import shapely

from pipeline.errors import SourceError
from pipeline.sources.base import SceneRef, SearchQuery, scene_ref
from pipeline.warnings import SkippedItemWarning


class IndexSource:
    """In-memory search over a list of items (geometry, collection, datetime, cloud cover columns)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._refs: dict[int, SceneRef | None] = {}
        """Parsed rows, by row number: neighbouring locations search the same scenes over and over."""
        p = Path(path)
        if not p.is_file():
            raise SourceError(f"source index {path!r} not found; build/serve the archive or fix source.url")
        suffix = p.suffix.lower()
        if suffix in (".parquet", ".geoparquet"):  # the suffixes SourceSpec.kind calls geoparquet
            self._load_parquet(p)
        elif suffix == ".ndjson":
            self._load_ndjson(p)
        else:
            self._load_json(p)

    def _load_parquet(self, p: Path) -> None:
        try:
            table = pq.read_table(p)
        except Exception as e:
            raise SourceError(f"cannot read stac-geoparquet {str(p)!r} ({e}); rebuild the index") from None
        cols = set(table.column_names)
        if not {"id", "collection", "datetime", "geometry"} <= cols:
            raise SourceError(f"{str(p)!r} is not a stac-geoparquet file (columns: {sorted(cols)[:8]}...)")
        self._table = table
        df = table.select([c for c in ("id", "collection", "datetime", "eo:cloud_cover", "platform")
                           if c in cols]).to_pandas()
        self._meta = self._frame(df, shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False)))
        self._items: list[dict] | None = None

    def _load_json(self, p: Path) -> None:
        try:
            data = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise SourceError(f"cannot read ItemCollection {str(p)!r} ({e}); fix or regenerate the file") from None
        feats = data.get("features") if isinstance(data, dict) else None
        if not isinstance(feats, list):
            raise SourceError(f"{str(p)!r} is not an ItemCollection (no 'features' list)")
        self._index_features(feats)

    def _load_ndjson(self, p: Path) -> None:
        """One item a line; a truncated or malformed line is skipped with a warning and the rest is searched."""
        feats = []
        try:
            with p.open() as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        feats.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        warnings.warn(f"skipped line {n} of {self.path}: not a JSON item ({e})", SkippedItemWarning,
                                      stacklevel=3)
        except OSError as e:
            raise SourceError(f"cannot read {str(p)!r} ({e}); fix or regenerate the file") from None
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
    def _frame(df: pd.DataFrame, geoms: np.ndarray) -> pd.DataFrame:
        df = df.copy()
        df["datetime"] = pd.to_datetime(df["datetime"], utc=True, errors="coerce")
        if "eo:cloud_cover" not in df:
            df["eo:cloud_cover"] = np.nan
        if "platform" not in df:
            df["platform"] = None
        df["geometry"] = geoms
        return df

    def search(self, q: SearchQuery) -> list[SceneRef]:
        m = self._meta
        sel = (m["collection"] == q.collection) & (m["datetime"] >= pd.Timestamp(q.start)) & (
            m["datetime"] <= pd.Timestamp(q.end))
        if q.max_cloud is not None:
            sel &= pd.to_numeric(m["eo:cloud_cover"], errors="coerce").fillna(np.inf) <= q.max_cloud
        if q.platforms:
            sel &= m["platform"].isin(q.platforms)
        idx = np.flatnonzero(sel.to_numpy())
        if idx.size:
            geoms = m["geometry"].to_numpy()[idx]
            ok = np.array([g is not None for g in geoms])
            hit = np.zeros(idx.size, dtype=bool)
            hit[ok] = shapely.intersects(np.asarray(list(geoms[ok])), shapely.box(*q.bbox))
            idx = idx[hit]
        idx = idx[: q.limit]
        todo = np.array([i for i in idx if int(i) not in self._refs], dtype=np.int64)
        for i, d in zip(todo, self._dicts(todo) if todo.size else [], strict=True):
            try:
                self._refs[int(i)] = scene_ref(pystac.Item.from_dict(d, preserve_dict=False))
            except Exception as e:  # a truncated/malformed item must not kill the run
                self._refs[int(i)] = None
                warnings.warn(f"skipped item {d.get('id')!r} of {self.path}: {type(e).__name__}: {e}",
                              SkippedItemWarning, stacklevel=2)
        return [r for r in (self._refs[int(i)] for i in idx) if r is not None]

    def _dicts(self, idx: np.ndarray) -> list[dict]:
        if self._items is not None:
            return [self._items[i] for i in idx]
        from stac_geoparquet.arrow import stac_table_to_items

        return list(stac_table_to_items(self._table.take(idx)))

