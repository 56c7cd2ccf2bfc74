"""Independent checks for the sampler tests: overlap in area computed with PROJ's own EPSG definitions.

Nothing here reuses the sampler's geometry code: each footprint is built in its own EPSG code (326zz/327zz,
false northing included), the other footprint's boundary is densely sampled and carried into that frame with
pyproj, and shapely measures the intersection area.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import shapely
from pyproj import Geod, Transformer

GEOD = Geod(ellps="WGS84")


@lru_cache(maxsize=512)
def _tr(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def _square(lon: float, lat: float, epsg: int, half: float, per_edge: int = 32) -> np.ndarray:
    x, y = _tr("EPSG:4326", f"EPSG:{epsg}").transform(lon, lat)
    t = np.linspace(-1.0, 1.0, per_edge + 1)[:-1]
    one = np.ones_like(t)
    ux = np.concatenate([t, one, -t, -one])
    uy = np.concatenate([-one, t, one, -t])
    return np.stack([x + half * ux, y + half * uy], axis=1)


def overlap_areas(df: pd.DataFrame, side_m: float | np.ndarray) -> list[tuple[int, int, float]]:
    """(i, j, shared area m^2) for every pair of footprints that share area (should be empty)."""
    n = len(df)
    if n < 2:
        return []
    side = np.broadcast_to(np.asarray(side_m, dtype=float), (n,))
    lon, lat = df["lon"].to_numpy(float), df["lat"].to_numpy(float)
    epsg = df["epsg"].to_numpy(int)
    i, j = np.triu_indices(n, 1)
    _, _, d = GEOD.inv(lon[i], lat[i], lon[j], lat[j])
    near = np.asarray(d) < (side[i] + side[j]) / np.sqrt(2.0) / 0.9996 * 1.01
    bad = []
    for a, b in zip(i[near], j[near], strict=True):
        ring = _square(lon[b], lat[b], epsg[b], side[b] / 2)
        x, y = _tr(f"EPSG:{epsg[b]}", f"EPSG:{epsg[a]}").transform(ring[:, 0], ring[:, 1])
        other = shapely.Polygon(np.stack([x, y], axis=1))
        ax, ay = _tr("EPSG:4326", f"EPSG:{epsg[a]}").transform(lon[a], lat[a])
        h = side[a] / 2
        area = shapely.box(ax - h, ay - h, ax + h, ay + h).intersection(other).area
        if area > 1e-6:
            bad.append((int(a), int(b), float(area)))
    return bad


def cities(rows: list[tuple[float, float]], population: list[int] | None = None) -> pd.DataFrame:
    """A city table with the given (lon, lat) centres."""
    return pd.DataFrame({
        "city_id": np.arange(1, len(rows) + 1, dtype=np.int64) * 1000,
        "name": [f"c{k}" for k in range(len(rows))],
        "country": ["XX"] * len(rows),
        "lon": [r[0] for r in rows],
        "lat": [r[1] for r in rows],
        "population": population or [100_000] * len(rows),
    })
