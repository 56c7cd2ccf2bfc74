"""Render a planned scene into arrays (no I/O): the truth function on each asset's pixel grid."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pipeline.archive import spectra, truth
from pipeline.archive.plan import SITE_MIXTURE, Scene, site_seed
from pipeline.archive.sites import site_by_name
from pipeline.products import PRODUCTS, Band


@dataclass(frozen=True)
class Grid:
    epsg: int
    x0: float
    y1: float
    res: float
    width: int
    height: int

    @property
    def transform(self) -> tuple[float, float, float, float, float, float]:
        return (self.res, 0.0, self.x0, 0.0, -self.res, self.y1)


def grid_of(scene: Scene, res: float) -> Grid:
    x0, y0, x1, y1 = scene.bounds
    return Grid(scene.epsg, x0, y1, res, round((x1 - x0) / res), round((y1 - y0) / res))


@lru_cache(maxsize=16)
def site_coords(grid: Grid, site: str) -> tuple[np.ndarray, np.ndarray]:
    """Site-local metres of every pixel centre of ``grid``."""
    s = site_by_name(site)
    cols = grid.x0 + (np.arange(grid.width) + 0.5) * grid.res
    rows = grid.y1 - (np.arange(grid.height) + 0.5) * grid.res
    ex, ey = np.meshgrid(cols, rows)
    x, y = truth.to_site(grid.epsg, s.lon, s.lat).transform(ex, ey)
    return np.asarray(x), np.asarray(y)


@lru_cache(maxsize=16)
def site_classes(grid: Grid, site: str) -> np.ndarray:
    x, y = site_coords(grid, site)
    return truth.landcover(x, y, site_seed(site), SITE_MIXTURE[site])


def band_ordinal(product: str, band: Band) -> int:
    return PRODUCTS[product].band_names.index(band.name) + 1


def render_band(scene: Scene, band: Band) -> np.ndarray:
    """Stored values of one band of a scene on its native grid (nodata outside the swath)."""
    g = grid_of(scene, band.resolution_m)
    x, y = site_coords(g, scene.site)
    return encode(scene, band, values_at(scene, band, x, y, site_classes(g, scene.site)))


def values_at(scene: Scene, band: Band, x: np.ndarray, y: np.ndarray, cls: np.ndarray | None = None) -> np.ndarray:
    """The truth as float DN (before rounding) at site-local metres; NaN outside the swath."""
    p = PRODUCTS[scene.product]
    if cls is None:
        cls = truth.landcover(x, y, site_seed(scene.site), SITE_MIXTURE[scene.site])
    lat = site_by_name(scene.site).lat
    k = band_ordinal(scene.product, band)
    cloud = truth.cloud_mask(x, y, scene.seed, scene.cloud_threshold)
    if p.kind == "sar":
        s0 = spectra.sar_sigma0(cls, band.name, scene.vigour) * 10 ** (truth.sar_pattern_db(x, y, k, scene.seed) / 10)
        dn = np.sqrt(s0) * 10 ** (truth.SAR_K_DB / 20)
    elif band.common_name and band.common_name.startswith("lwir") and scene.product.endswith("_toa"):
        t = truth.surface_temperature(cls, scene.datetime.timetuple().tm_yday, lat)
        t = np.where(cloud, 250.0, t) + 3.0 * truth.pattern(x, y, k, scene.seed) / truth.PATTERN_A
        dn = (t - truth.LANDSAT_ST_OFFSET) / truth.LANDSAT_ST_SCALE
    else:
        lam = float(band.center_nm or 0.0)
        rho = spectra.reflectance(cls, lam, scene.vigour, scene.snow)
        if band.common_name == "cirrus":
            rho = np.full_like(rho, 0.004)
        rho = np.where(cloud, spectra.cloud_reflectance(lam), rho)
        if scene.product == "s2_l1c" or scene.product.endswith("_toa"):
            rho = rho + truth.haze(lam)
        rho = rho + truth.pattern(x, y, k, scene.seed)
        scale, offset = DN_SCALE[scene.product]
        dn = (rho - offset) / scale
    return np.where(truth.valid_mask(x, y, scene.edge), dn, np.nan)


DN_SCALE = {  # reflectance = DN * scale + offset
    "s2_l2a": (1e-4, -truth.S2_OFFSET_DN * 1e-4), "s2_l1c": (1e-4, -truth.S2_OFFSET_DN * 1e-4),
    "landsat_oli_sr": (truth.LANDSAT_SR_SCALE, truth.LANDSAT_SR_OFFSET),
    "landsat_oli_toa": (truth.LANDSAT_TOA_SCALE, truth.LANDSAT_TOA_OFFSET), "enmap_l2a": (1e-4, 0.0),
}
for _p in ("landsat_tm_sr", "landsat_etm_sr"):
    DN_SCALE[_p] = DN_SCALE["landsat_oli_sr"]
for _p in ("landsat_tm_toa", "landsat_etm_toa"):
    DN_SCALE[_p] = DN_SCALE["landsat_oli_toa"]


def encode(scene: Scene, band: Band, dn: np.ndarray) -> np.ndarray:
    """Float DN -> the stored dtype (rounded, clipped to the valid range, nodata where NaN)."""
    p = PRODUCTS[scene.product]
    info = np.iinfo(p.dtype)
    lo = 1 if info.min == 0 else info.min + 1
    out = np.clip(np.rint(np.nan_to_num(dn, nan=0.0)), lo, info.max).astype(p.dtype)
    return np.where(np.isnan(dn), np.asarray(p.nodata).astype(p.dtype), out)


# Quality-layer codes
SCL_NODATA, SCL_VEG, SCL_NOTVEG, SCL_WATER, SCL_CLOUD_MED, SCL_CLOUD_HIGH, SCL_SNOW = 0, 4, 5, 6, 8, 9, 11
QA_FILL, QA_CLEAR, QA_WATER, QA_CLOUD, QA_SNOW = 1, 21824, 21952, 22280, 30048


def render_mask(scene: Scene, res: float) -> np.ndarray:
    """The product's per-pixel quality layer (SCL, QA_PIXEL or EnMAP cloud) on a grid of ``res`` metres."""
    g = grid_of(scene, res)
    x, y = site_coords(g, scene.site)
    cls = site_classes(g, scene.site)
    valid = truth.valid_mask(x, y, scene.edge)
    f = truth.cloud_field(x, y, scene.seed)
    cloud = f > scene.cloud_threshold
    if scene.product == "s2_l2a":
        scl = np.where(np.isin(cls, spectra.VEGETATED), SCL_VEG, SCL_NOTVEG)
        scl = np.where(cls == spectra.WATER, SCL_WATER, scl)
        if scene.snow:
            scl = np.where(cls != spectra.WATER, SCL_SNOW, scl)
        scl = np.where(cloud, np.where(f > scene.cloud_threshold + 0.1, SCL_CLOUD_HIGH, SCL_CLOUD_MED), scl)
        return np.where(valid, scl, SCL_NODATA).astype(np.uint8)
    if scene.product.startswith("landsat"):
        qa = np.where(cls == spectra.WATER, QA_WATER, QA_CLEAR)
        if scene.snow:
            qa = np.where(cls != spectra.WATER, QA_SNOW, qa)
        qa = np.where(cloud, QA_CLOUD, qa)
        return np.where(valid, qa, QA_FILL).astype(np.uint16)
    if scene.product == "enmap_l2a":
        return np.where(valid & cloud, 1, 0).astype(np.uint8)
    raise ValueError(f"product {scene.product!r} has no quality layer")


def footprint_local(scene: Scene, region: tuple[float, float, float, float]):  # -> shapely Polygon
    """Valid-data footprint in the site-local frame: the region clipped by the swath edge."""
    from shapely.geometry import Polygon, box

    poly = box(*region)
    if scene.edge is not None:
        cb, sb, d = scene.edge
        big = 1e6
        # half-plane x cb + y sb <= d as a large polygon
        px, py = cb * d, sb * d
        tx, ty = -sb, cb
        half = Polygon([
            (px + tx * big, py + ty * big), (px - tx * big, py - ty * big),
            (px - tx * big - cb * big, py - ty * big - sb * big), (px + tx * big - cb * big, py + ty * big - sb * big),
        ])
        poly = poly.intersection(half)
    return poly
