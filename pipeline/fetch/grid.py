"""One UTM grid per location, shared by every product: same centre, exact ``patch_px`` at each resolution. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from pyproj import Transformer

CENTRE_SNAP_M = 60.0
"""Location centres are snapped to this grid of their UTM zone, so every product's grid (10/20/30/60 m) shares the
exact centre and, for even patch sizes, has pixel edges on multiples of its resolution: Sentinel-2's lattice, read
without resampling. Landsat Collection 2 puts pixel *centres* on multiples of 30 m (edges at 15 m), which no grid
sharing S2's centre can match: Landsat is resampled onto the shared grid (bilinear, a half-pixel shift)."""


@dataclass(frozen=True)
class PatchGrid:
    epsg: int
    x0: float
    """West edge (metres, UTM)."""
    y1: float
    """North edge."""
    res: float
    px: int

    @property
    def transform(self) -> tuple[float, float, float, float, float, float]:
        return (self.res, 0.0, self.x0, 0.0, -self.res, self.y1)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y1 - self.px * self.res, self.x0 + self.px * self.res, self.y1)

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x0 + self.px * self.res / 2, self.y1 - self.px * self.res / 2)

    def pixel_centres(self) -> tuple[list[float], list[float]]:
        xs = [self.x0 + (i + 0.5) * self.res for i in range(self.px)]
        ys = [self.y1 - (j + 0.5) * self.res for j in range(self.px)]
        return xs, ys


def utm_epsg(lon: float, lat: float) -> int:
    """WGS 84 / UTM zone of a point (the sampler's rule, one point). Latitudes beyond UTM's range (84 N / 80 S) are
    the sampler's to reject."""
    from sampling.geometry import utm_epsg as utm_epsg_of

    return int(utm_epsg_of(lon, lat))


def location_centre(lon: float, lat: float, epsg: int) -> tuple[float, float]:
    """The location's centre in its UTM zone, snapped to CENTRE_SNAP_M."""
    x, y = _to_utm(epsg).transform(lon, lat)
    return (round(x / CENTRE_SNAP_M) * CENTRE_SNAP_M, round(y / CENTRE_SNAP_M) * CENTRE_SNAP_M)


def patch_grid(centre: tuple[float, float], epsg: int, res: float, px: int) -> PatchGrid:
    half = px * res / 2
    return PatchGrid(epsg, centre[0] - half, centre[1] + half, res, px)


def lonlat_boxes(grid: PatchGrid, pad_m: float = 0.0) -> tuple[tuple[float, float, float, float], ...]:
    """lon/lat search box(es) around the grid (edges densified by PROJ): one box, or two when the grid crosses
    the antimeridian (PROJ then gives west > east; a search box cannot wrap, and one box over all longitudes
    would rank scenes from the whole latitude band first)."""
    x0, y0, x1, y1 = grid.bounds
    w, s_, e, n = _to_utm(grid.epsg).transform_bounds(x0 - pad_m, y0 - pad_m, x1 + pad_m, y1 + pad_m,
                                                      densify_pts=21, direction="INVERSE")
    if w > e:
        return ((w, s_, 180.0, n), (-180.0, s_, e, n))
    return ((w, s_, e, n),)


_CACHE: dict[int, Transformer] = {}


def _to_utm(epsg: int) -> Transformer:
    tr = _CACHE.get(epsg)
    if tr is None:
        tr = _CACHE[epsg] = Transformer.from_crs(4326, epsg, always_xy=True)
    return tr

