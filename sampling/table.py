"""The output table of the sampler: column contract, the existing-locations reader and the table builder.

Pure (no file I/O): :mod:`sampling.io` reads and writes the table, :mod:`sampling.sampler` fills it.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from sampling.filters import footprint_polygons
from sampling.geometry import UTM_LAT_MAX, UTM_LAT_MIN, to_utm, utm_epsg, zone_of_epsg

COLUMNS = ("location_id", "lon", "lat", "epsg", "city", "country", "city_id", "dist_m", "geometry")
CITY_COLUMNS = ("city_id", "name", "country", "lon", "lat", "population")
STATE_KEY = "ssl4eo_sampler"
STATS_KEY = "ssl4eo_sampler_stats"


class SamplingError(ValueError):
    """The sampler cannot do what was asked; the message is one line naming the problem and the fix."""

    def __init__(self, message: str, *, placed: int | None = None, requested: int | None = None,
                 rejected: dict[str, int] | None = None) -> None:
        super().__init__(message)
        self.placed = placed
        self.requested = requested
        self.rejected = rejected or {}


def check_cities(cities: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in CITY_COLUMNS if c not in cities.columns]
    if missing:
        raise SamplingError(f"the city table lacks column(s) {missing}; it needs {', '.join(CITY_COLUMNS)}")
    if len(cities) == 0:
        raise SamplingError("the city table is empty; lower min_population or use another city source")
    lon, lat = cities["lon"].to_numpy(np.float64), cities["lat"].to_numpy(np.float64)
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()) or (np.abs(lat) > 90).any() or \
            (np.abs(lon) > 180).any():
        raise SamplingError("the city table has missing or out-of-range lon/lat values; fix or drop those rows")
    return cities.reset_index(drop=True)


def existing_arrays(existing: gpd.GeoDataFrame | None, footprint_m: float) -> dict[str, NDArray[Any]]:
    """Arrays of the existing locations; half sides from the file's state, else from their geometry."""
    if existing is None or len(existing) == 0:
        z = np.zeros(0)
        return {"id": z.astype(np.int64), "lon": z, "lat": z, "zone": z.astype(np.int64), "e": z, "n": z,
                "half": z, "epsg": z.astype(np.int32), "rows": None}
    missing = [c for c in COLUMNS if c not in existing.columns]
    if missing:
        raise SamplingError(f"the existing locations lack column(s) {missing}; pass a locations.parquet "
                            "written by this sampler, or move it away to start afresh")
    ids = existing["location_id"].to_numpy(np.int64)
    if len(np.unique(ids)) != len(ids):
        raise SamplingError("the existing locations have duplicate location_id values; fix the file")
    lon, lat = existing["lon"].to_numpy(np.float64), existing["lat"].to_numpy(np.float64)
    bad = ~(np.isfinite(lon) & np.isfinite(lat)) | (np.abs(lon) > 180) | (lat < UTM_LAT_MIN) | (lat > UTM_LAT_MAX)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SamplingError(f"the existing locations have {int(bad.sum())} row(s) with missing or out-of-range "
                            f"lon/lat (first: location_id {int(ids[i])} at {lon[i]}, {lat[i]}; lon must lie in "
                            f"-180..180 and lat in {UTM_LAT_MIN:g}..{UTM_LAT_MAX:g}); fix or drop those rows")
    try:
        zone = zone_of_epsg(existing["epsg"].to_numpy())
    except ValueError as err:
        raise SamplingError(f"the existing locations: {err}; fix the epsg column") from None
    e, n = to_utm(lon, lat, zone)
    state = existing.attrs.get(STATE_KEY) or {}
    if "footprint_m" in state:
        half = np.full(len(lon), float(state["footprint_m"]) / 2.0)
    else:
        half = _half_from_geometry(existing.geometry.to_numpy(), zone, e, n)
    return {"id": ids, "lon": lon, "lat": lat, "zone": zone, "e": e, "n": n, "half": half,
            "epsg": existing["epsg"].to_numpy(np.int32), "rows": existing}


def _half_from_geometry(geoms: NDArray[np.object_], zone: NDArray[np.int64], e: NDArray[np.float64],
                        n: NDArray[np.float64]) -> NDArray[np.float64]:
    """Half side of each footprint polygon: its largest vertex offset from the centre in its own zone."""
    xy, idx = shapely.get_coordinates(geoms, return_index=True)
    ve, vn = to_utm(xy[:, 0], xy[:, 1], zone[idx])
    off = np.maximum(np.abs(ve - e[idx]), np.abs(vn - n[idx]))
    half = np.zeros(len(geoms))
    np.maximum.at(half, idx, off)
    return half


def build_table(old: dict[str, Any], new: dict[str, NDArray[Any]] | None, cities: pd.DataFrame,
           state: dict[str, Any], stats: dict[str, Any], polygon_segment_m: float) -> gpd.GeoDataFrame:
    """The output table: existing rows as they were, then the new ones (arrays of :class:`_Placed` fields
    plus city index and distance), with their footprint polygons."""
    cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    rows = old["rows"]
    if rows is not None:
        cols["location_id"].append(old["id"])
        cols["lon"].append(old["lon"])
        cols["lat"].append(old["lat"])
        cols["epsg"].append(old["epsg"])
        for c in ("city", "country"):
            cols[c].append(rows[c].astype(str).to_numpy(object))
        cols["city_id"].append(rows["city_id"].to_numpy(np.int64))
        cols["dist_m"].append(rows["dist_m"].to_numpy(np.float64))
        cols["geometry"].append(rows.geometry.to_numpy())
    if new is not None and len(new["lon"]):
        lon, lat, city = new["lon"], new["lat"], new["city"]
        next_id = int(old["id"].max()) + 1 if len(old["id"]) else 0
        cols["location_id"].append(np.arange(next_id, next_id + len(lon), dtype=np.int64))
        cols["lon"].append(lon)
        cols["lat"].append(lat)
        cols["epsg"].append(utm_epsg(lon, lat))
        cols["city"].append(cities["name"].to_numpy(object)[city])
        cols["country"].append(cities["country"].to_numpy(object)[city])
        cols["city_id"].append(cities["city_id"].to_numpy(np.int64)[city])
        cols["dist_m"].append(new["dist_m"])
        cols["geometry"].append(footprint_polygons(lon, lat, new["zone"], new["half"], polygon_segment_m,
                                                   (new["e"], new["n"])))
    dtypes = {"location_id": np.int64, "lon": np.float64, "lat": np.float64, "epsg": np.int32,
              "city": object, "country": object, "city_id": np.int64, "dist_m": np.float64, "geometry": object}
    data = {c: (np.concatenate(v) if v else np.zeros(0, dtype=dtypes[c])).astype(dtypes[c]) for c, v in cols.items()}
    df = pd.DataFrame({c: data[c] for c in COLUMNS[:-1]})
    for c in ("city", "country"):
        df[c] = df[c].astype(str)
    gdf = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(data["geometry"], crs="EPSG:4326"), crs="EPSG:4326")
    gdf.attrs[STATE_KEY] = state
    gdf.attrs[STATS_KEY] = stats
    return gdf
