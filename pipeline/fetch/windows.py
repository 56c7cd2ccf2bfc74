"""Window arithmetic for reading a source raster onto a patch grid without a warp, when that is exact. Pure.

A source whose CRS is the patch's and whose pixel lattice nests the patch lattice (source pixel = k patch pixels,
edges aligned) needs no reprojection: a windowed read (k = 1) or a windowed read resampled to k times the size
(k > 1) gives what GDAL's warper would (to 1 DN of rounding), at a fraction of the cost. For k > 1 the window is
padded by one source pixel on each side and the result cropped, so the bilinear kernel at the patch edge sees its
real neighbours, as the warper's does. One difference remains for k > 1 (a review found it): next to a nodata
source pixel the resampled read may give a patch pixel a value where the warper gives nodata (an edge pixel at
most), so a patch's nodata fraction can be understated by that edge.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.fetch.grid import PatchGrid

_EPS = 1e-6


@dataclass(frozen=True)
class NestedWindow:
    col: int
    row: int
    size: int
    """Window side in source pixels (padding included)."""
    factor: int
    """Patch pixels per source pixel."""
    crop: int
    """Patch pixels to drop on each side after the resampled read."""


def nested_window(transform: tuple[float, ...], epsg: int | None, width: int, height: int,
                  grid: PatchGrid) -> NestedWindow | None:
    """The window that reads ``grid`` from a north-up source without warping, or None (then warp)."""
    a, b, c, d, e, f = transform[:6]
    if epsg != grid.epsg or b or d or abs(a + e) > _EPS * abs(a) or a <= 0:
        return None
    k = a / grid.res
    if abs(k - round(k)) > _EPS or round(k) < 1 or grid.px % round(k):
        return None
    k = round(k)
    fx, fy = (grid.x0 - c) / a, (f - grid.y1) / a
    if abs(fx - round(fx)) > _EPS or abs(fy - round(fy)) > _EPS:
        return None
    pad = 0 if k == 1 else 1
    col, row, n = round(fx) - pad, round(fy) - pad, grid.px // k + 2 * pad
    if col < 0 or row < 0 or col + n > width or row + n > height:
        return None  # partly outside the source: the warper fills nodata correctly
    return NestedWindow(col, row, n, k, pad * k)
