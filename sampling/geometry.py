"""Pure geometry of location footprints: UTM zones, transverse Mercator through PROJ, footprint boundaries.

A location's footprint is the axis-aligned square of side ``side_m`` centred on the location in the
location's UTM zone (zone from the centre longitude, no Norway/Svalbard exceptions). Northern and southern
UTM (EPSG 326zz / 327zz) differ only by a false northing of 10,000 km, so the same square is described in
both; internally every zone uses the *northern* frame (negative northings south of the equator), which makes
footprints on both sides of the equator directly comparable.

All transverse Mercator arithmetic goes through one PROJ pipeline with ``lon_0=0``: a point in zone ``z`` is
projected as ``(lon - central_meridian(z), lat)``. This equals PROJ's own ``+proj=utm +zone=z`` to 1e-8 m
and lets one vectorised call serve points of every zone (also across the antimeridian).
"""

from __future__ import annotations

import math
import threading

import numpy as np
import shapely
import shapely.affinity
from numpy.typing import NDArray
from pyproj import Geod, Transformer

WGS84_A = 6378137.0
WGS84_F = 1.0 / 298.257223563
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)
M_MIN = WGS84_A * (1.0 - WGS84_E2)
"""Meridional radius of curvature at the equator: the smallest radius of curvature anywhere on WGS 84, so a
path of length d turns the surface normal by at most d / M_MIN radians (bounds latitude differences)."""
K0 = 0.9996
"""UTM central scale factor, the smallest scale anywhere in a zone: a grid length L spans at most L / K0 m."""
UTM_LAT_MIN, UTM_LAT_MAX = -80.0, 84.0
"""Latitudes where UTM is defined. Locations outside are rejected (no polar stereographic); see the README."""

_TM_PIPELINE = (
    "+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=rad "
    "+step +proj=tmerc +lat_0=0 +lon_0=0 +k=0.9996 +x_0=500000 +y_0=0 +ellps=WGS84"
)
_local = threading.local()

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def _tm() -> Transformer:
    """The per-thread transverse Mercator transformer (pyproj objects are not shared across threads)."""
    tr = getattr(_local, "tm", None)
    if tr is None:
        tr = _local.tm = Transformer.from_pipeline(_TM_PIPELINE)
    return tr


def geod() -> Geod:
    """The per-thread WGS 84 geodesic solver."""
    g = getattr(_local, "geod", None)
    if g is None:
        g = _local.geod = Geod(ellps="WGS84")
    return g


def wrap_lon(lon: FloatArray) -> FloatArray:
    """Longitudes in [-540, 540) wrapped to [-180, 180); values already in range are returned unchanged."""
    x = np.asarray(lon, dtype=np.float64)
    if x.size == 0 or (x.min() >= -180.0 and x.max() < 180.0):
        return x
    x = x.copy()
    x[x >= 180.0] -= 360.0
    x[x < -180.0] += 360.0
    return x


def utm_zone(lon: FloatArray) -> IntArray:
    """UTM zone number 1..60 of each longitude (standard 6 deg zones; 180 deg E belongs to zone 1)."""
    return (np.floor((np.asarray(lon, dtype=np.float64) + 180.0) / 6.0).astype(np.int64) % 60) + 1


def central_meridian(zone: IntArray) -> FloatArray:
    return np.asarray(zone, dtype=np.float64) * 6.0 - 183.0


def utm_epsg(lon: FloatArray, lat: FloatArray) -> NDArray[np.int32]:
    """WGS 84 / UTM EPSG code (326zz north of the equator, 327zz south) of each point."""
    base = np.where(np.asarray(lat) >= 0.0, 32600, 32700)
    return (base + utm_zone(lon)).astype(np.int32)


def zone_of_epsg(epsg: NDArray[np.integer]) -> IntArray:
    """Zone numbers of WGS 84 / UTM EPSG codes; ValueError for any other code."""
    e = np.asarray(epsg, dtype=np.int64)
    zone = e % 100
    ok = ((e // 100 == 326) | (e // 100 == 327)) & (zone >= 1) & (zone <= 60)
    if not ok.all():
        bad = int(e[~ok][0])
        raise ValueError(f"EPSG:{bad} is not a WGS 84 / UTM zone (32601-32660, 32701-32760)")
    return zone


def to_utm(lon: FloatArray, lat: FloatArray, zone: IntArray) -> tuple[FloatArray, FloatArray]:
    """Easting/northing of points in the given zones (northern frame: no false northing in the south)."""
    e = wrap_lon(np.asarray(lon, dtype=np.float64) - central_meridian(zone))
    if not e.flags.writeable or not e.flags.c_contiguous:
        e = np.ascontiguousarray(e).copy()
    n = np.array(lat, dtype=np.float64, copy=True)
    _tm().transform(e, n, inplace=True)
    return e, n


def from_utm(e: FloatArray, n: FloatArray, zone: IntArray) -> tuple[FloatArray, FloatArray]:
    """Longitude/latitude of easting/northing in the given zones (northern frame)."""
    lon = np.array(e, dtype=np.float64, copy=True)
    lat = np.array(n, dtype=np.float64, copy=True)
    _tm().transform(lon, lat, direction="INVERSE", inplace=True)
    lon += central_meridian(zone)
    return wrap_lon(lon), lat


def square_rings(e: FloatArray, n: FloatArray, half: FloatArray, segments: int) -> NDArray[np.float64]:
    """Closed counter-clockwise boundary rings of axis-aligned squares, ``segments`` per edge.

    Shape (len(e), 4 * segments + 1, 2); vertex 0 is the south-west corner and is repeated at the end.
    """
    t = np.arange(segments, dtype=np.float64) / segments * 2.0 - 1.0  # -1 .. <1 along an edge
    one = np.ones(segments)
    ux = np.concatenate([t, one, -t, -one, [-1.0]])  # S edge W->E, E edge S->N, N edge E->W, W edge N->S
    uy = np.concatenate([-one, t, one, -t, [-1.0]])
    h = np.asarray(half, dtype=np.float64)[:, None]
    out = np.empty((len(e), ux.size, 2))
    out[:, :, 0] = np.asarray(e)[:, None] + h * ux
    out[:, :, 1] = np.asarray(n)[:, None] + h * uy
    return out


def segments_for(side_m: float, max_segment_m: float) -> int:
    """Edge subdivisions so that no boundary segment is longer than ``max_segment_m``."""
    return max(1, math.ceil(side_m / max_segment_m - 1e-9))


def lonlat_rings(lon: FloatArray, lat: FloatArray, zone: IntArray, half: FloatArray, segments: int,
                 en: tuple[FloatArray, FloatArray] | None = None) -> NDArray[np.float64]:
    """Footprint boundaries as (lon, lat) rings, shape (n, 4 * segments + 1, 2), vertex 0 the SW corner.

    Corners and edge midpoints are projected exactly; further vertices lie on the parabola through an
    edge's two corners and midpoint (in lon/lat), which matches the true image of the edge to about a
    millimetre for footprints of a few km (the third-order term), at a fraction of the cost. ``en``: the
    centres' easting/northing when already known.
    """
    e, n = en if en is not None else to_utm(lon, lat, zone)
    key = square_rings(e, n, half, min(segments, 2))
    k = key.shape[1]
    kl, kt = from_utm(key[:, :, 0].ravel(), key[:, :, 1].ravel(), np.repeat(np.asarray(zone), k))
    kl = kl.reshape(-1, k)
    kt = kt.reshape(-1, k)
    if segments <= 2:  # every vertex exact, longitudes already in [-180, 180)
        return np.stack([kl, kt], axis=2)
    kl = np.asarray(lon, dtype=np.float64)[:, None] + wrap_lon(kl - np.asarray(lon)[:, None])  # unwrapped
    t = np.arange(segments, dtype=np.float64) / segments * 2.0 - 1.0
    basis = np.stack([np.ones_like(t), t, t * t])  # (3, segments)
    key2 = np.stack([kl, kt], axis=1)  # (n, 2, 9)
    a, m, b = key2[:, :, 0:8:2], key2[:, :, 1:8:2], key2[:, :, 2:9:2]  # (n, 2, 4) each
    coef = np.stack([m, (b - a) / 2.0, (a + b) / 2.0 - m], axis=-1)  # (n, 2, 4, 3)
    edges = coef @ basis  # (n, 2, 4, segments)
    out = np.empty((len(e), 4 * segments + 1, 2))
    out[:, :-1, 0] = edges[:, 0].reshape(len(e), -1)
    out[:, :-1, 1] = edges[:, 1].reshape(len(e), -1)
    out[:, -1] = out[:, 0]
    out[:, :, 0] = wrap_lon(out[:, :, 0])
    return out


_WORLD = shapely.box(-180.0, -90.0, 180.0, 90.0)
_EAST = shapely.box(180.0, -90.0, 540.0, 90.0)


def polygons_4326(rings: NDArray[np.float64]) -> NDArray[np.object_]:
    """Shapely polygons of lon/lat rings; a ring that crosses the antimeridian becomes a MultiPolygon split
    at +/-180 deg (RFC 7946 section 3.1.9), so that planar lon/lat geometry stays correct."""
    lon = rings[:, :, 0]
    crosses = (lon.max(axis=1) - lon.min(axis=1)) > 180.0
    n, k = rings.shape[:2]
    geoms = shapely.from_ragged_array(shapely.GeometryType.POLYGON, rings.reshape(-1, 2),
                                      (np.arange(0, n * k + 1, k), np.arange(n + 1)))
    for i in np.flatnonzero(crosses):
        r = rings[i].copy()
        r[r[:, 0] < 0.0, 0] += 360.0
        p = shapely.Polygon(r)
        west = shapely.intersection(p, _WORLD)
        east = shapely.affinity.translate(shapely.intersection(p, _EAST), xoff=-360.0)
        parts = [g for g in (west, east) if not g.is_empty]
        polys = [q for g in parts for q in getattr(g, "geoms", [g]) if q.geom_type == "Polygon"]
        geoms[i] = shapely.MultiPolygon(polys) if len(polys) > 1 else polys[0]
    return geoms


def centre_distance_bound(half_a: FloatArray | float, half_b: FloatArray | float) -> FloatArray | float:
    """Upper bound (m, along the ellipsoid) of the centre distance of two *overlapping* footprints.

    Every footprint point lies within half * sqrt(2) grid metres of the centre, i.e. within that / K0 metres
    on the ground (UTM scale is >= K0 everywhere). A 1e-4 relative pad covers rounding.
    """
    return (np.asarray(half_a) + np.asarray(half_b)) * math.sqrt(2.0) / K0 * (1.0 + 1e-4)


def max_lon_separation_deg(lat_abs_max: FloatArray, dist_m: float) -> FloatArray:
    """Largest longitude difference (deg) of two points within ``dist_m`` when both lie at |lat| <= the bound.

    The chord between them is >= 2 * a * cos(lat_max) * sin(dlon / 2) (horizontal radii N cos(lat) >= a
    cos(lat)) and the chord is <= the surface distance.
    """
    c = np.cos(np.radians(np.minimum(lat_abs_max, 89.999)))
    s = np.minimum(dist_m / (2.0 * WGS84_A * c), 1.0)
    return np.degrees(2.0 * np.arcsin(s))
