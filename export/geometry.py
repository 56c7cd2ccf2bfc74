"""Footprints of patches: from the UTM affine transform and the patch size to lon/lat polygons. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

Transform = tuple[float, float, float, float, float, float]


def utm_corners(transform: Sequence[float], width: int, height: int) -> list[tuple[float, float]]:
    """The four outer corners (x, y) of a ``width`` x ``height`` pixel patch, clockwise from the top left."""
    a, b, c, d, e, f = (float(v) for v in transform)

    def at(col: float, row: float) -> tuple[float, float]:
        return (a * col + b * row + c, d * col + e * row + f)

    return [at(0, 0), at(width, 0), at(width, height), at(0, height)]


def utm_bbox(transform: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    xs, ys = zip(*utm_corners(transform, width, height), strict=True)
    return (min(xs), min(ys), max(xs), max(ys))


@lru_cache(maxsize=256)
def _to_lonlat(epsg: int):  # type: ignore[no-untyped-def]
    from pyproj import Transformer

    return Transformer.from_crs(epsg, 4326, always_xy=True)


def footprint_lonlat(epsg: int, transform: Sequence[float], width: int, height: int) -> list[tuple[float, float]]:
    """Closed lon/lat ring (5 points, counter-clockwise as GeoJSON prefers) of the patch footprint.

    The edges are kept straight between the corners: over a few km the curvature of a UTM edge in lon/lat is
    far below a pixel.
    """
    corners = utm_corners(transform, width, height)
    tr = _to_lonlat(int(epsg))
    lon, lat = tr.transform([p[0] for p in corners], [p[1] for p in corners])
    ring = [(round(float(x), 9), round(float(y), 9)) for x, y in zip(lon, lat, strict=True)]
    if _signed_area(ring) < 0:
        ring.reverse()
    return [*ring, ring[0]]


def bbox_of(ring: Sequence[tuple[float, float]]) -> tuple[float, float, float, float]:
    xs = [p[0] for p in ring]
    ys = [p[1] for p in ring]
    return (min(xs), min(ys), max(xs), max(ys))


def _signed_area(ring: Sequence[tuple[float, float]]) -> float:
    return 0.5 * sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, [*ring[1:], ring[0]], strict=True))
