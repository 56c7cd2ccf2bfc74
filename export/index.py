"""The GeoParquet index beside the store: one row per product, sample and season, with the patch footprint."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from export.columns import iso_to_ms
from export.geometry import footprint_lonlat
from export.layout import shard_of
from export.model import ExportSpec, LocationRecord


def index_frame(spec: ExportSpec, records: Sequence[LocationRecord]) -> pd.DataFrame:
    """Rows ordered by product (spec order), sample, time; ``footprint`` holds lon/lat rings (no shapely yet);
    ``scale`` and ``offset`` one value per band (physical = stored * scale + offset)."""
    rows = []
    for layout in spec.products:
        unknown = [float("nan")] * len(layout.bands)  # staged before scale and offset were kept
        for i, r in enumerate(records):
            pr = r.products[layout.name]
            ring = footprint_lonlat(r.epsg, pr.transform, layout.patch_px, layout.patch_px)
            for t, s in enumerate(pr.seasons):
                rows.append({
                    "product": layout.name, "sample": i, "time": t, "shard": shard_of(i, spec.shard_size),
                    "location_id": r.location_id, "lon": r.lon, "lat": r.lat, "epsg": r.epsg,
                    "datetime": iso_to_ms(s.datetime), "scene_id": s.scene_id, "scene_href": s.scene_href,
                    "collection": s.collection, "cloud_fraction": s.cloud_fraction,
                    "nodata_fraction": s.nodata_fraction, "transform": list(pr.transform),
                    "scale": list(s.scale) or unknown, "offset": list(s.offset) or unknown, "footprint": ring,
                })
    df = pd.DataFrame(rows)
    if len(df):
        df["datetime"] = pd.to_datetime(df["datetime"], unit="ms", utc=True)
        df = df.astype({"sample": np.int64, "time": np.int8, "shard": np.int32, "location_id": np.int64,
                        "epsg": np.int32, "cloud_fraction": np.float32, "nodata_fraction": np.float32})
    return df


def write_index(path: Path, spec: ExportSpec, records: Sequence[LocationRecord]) -> int:
    """Write the GeoParquet index (EPSG:4326 footprints) atomically; returns the row count."""
    import geopandas as gpd
    from shapely.geometry import Polygon

    df = index_frame(spec, records)
    geom = [Polygon(r) for r in df.pop("footprint")] if len(df) else []
    gdf = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geom, crs="EPSG:4326"))
    tmp = path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        gdf.to_parquet(tmp, index=False, compression="zstd")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return len(gdf)
