"""The archive plan: which scenes exist, on which grid, when, how cloudy, where their swath edge runs. Pure.

``plan_archive()`` is deterministic: the builder writes exactly these scenes, and tests look up the scene of an
item id here to evaluate the truth function (nothing of the truth leaks into the STAC items).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from pipeline.archive import spectra, truth
from pipeline.archive.sites import SITES, Site
from pipeline.products import PRODUCTS

ARCHIVE_VERSION = 1
REFERENCE_DATES = ("03-20", "06-21", "09-22", "12-21")


@dataclass(frozen=True)
class CollectionSpec:
    """How much of one product the archive holds."""

    product: str
    sites: tuple[str, ...]
    half_size_m: float
    """Site coverage: a square of this half side around the site centre (site-local frame)."""
    offsets_days: tuple[int, ...]
    """Acquisitions relative to each reference date of each year (+ a per-site jitter of -2..+2 days)."""
    hour_utc_at_greenwich: float = 10.5
    years: tuple[int, ...] = (2023, 2024)
    platforms: tuple[str, ...] = ()
    """Platforms flying in those years (default: the product's)."""


ALL_SITES = tuple(s.name for s in SITES)
COLLECTIONS: tuple[CollectionSpec, ...] = (
    CollectionSpec("s2_l2a", ALL_SITES, 5000.0, (-19, -4, 11)),
    CollectionSpec("s2_l1c", ("Munich", "London", "Nairobi"), 5000.0, (-4, 11)),
    CollectionSpec("landsat_oli_sr", ALL_SITES, 6000.0, (-12, 5)),
    CollectionSpec("landsat_oli_toa", ("Munich", "Sao Paulo"), 6000.0, (-12, 5)),
    CollectionSpec("landsat_tm_sr", ("Munich", "Nairobi"), 6000.0, (-9,), years=(2010, 2011), platforms=("landsat-5",)),
    CollectionSpec("landsat_tm_toa", ("Munich",), 6000.0, (-9,), years=(2010, 2011), platforms=("landsat-5",)),
    CollectionSpec("landsat_etm_sr", ("Munich", "Nairobi"), 6000.0, (3,), years=(2002, 2003)),
    CollectionSpec("landsat_etm_toa", ("Munich",), 6000.0, (3,), years=(2002, 2003)),
    CollectionSpec("enmap_l2a", ("Munich", "Nairobi", "Tromso"), 2500.0, (-8,)),
)
S1_SPEC = CollectionSpec("s1_grd", ALL_SITES, 5000.0, ())
"""Sentinel-1 follows Sentinel-2 L2A: one acquisition per optical one, -3..+4 days away (some further)."""

SITE_MIXTURE: dict[str, dict[int, float]] = {
    "Munich": {spectra.TREE: 0.28, spectra.CROP: 0.35, spectra.GRASS: 0.22, spectra.WATER: 0.05, spectra.BARE: 0.1},
    "London": {spectra.GRASS: 0.35, spectra.CROP: 0.25, spectra.TREE: 0.2, spectra.WATER: 0.08, spectra.WETLAND: 0.12},
    "Sao Paulo": {spectra.TREE: 0.4, spectra.GRASS: 0.2, spectra.CROP: 0.2, spectra.WATER: 0.08, spectra.SHRUB: 0.12},
    "Nairobi": {spectra.GRASS: 0.35, spectra.SHRUB: 0.25, spectra.BARE: 0.15, spectra.CROP: 0.2, spectra.TREE: 0.05},
    "Tromso": {spectra.TREE: 0.3, spectra.GRASS: 0.15, spectra.WATER: 0.35, spectra.BARE: 0.2},
}


@dataclass(frozen=True)
class Scene:
    """One item of the archive (one acquisition of one product over one tile)."""

    item_id: str
    product: str
    site: str
    epsg: int
    bounds: tuple[float, float, float, float]
    """Raster extent in the scene CRS (snapped to the coarsest band's pixel grid)."""
    region: tuple[float, float, float, float]
    """The tile's coverage in the site-local frame (the scene's footprint before its swath edge)."""
    datetime: dt.datetime
    platform: str
    seed: int
    cloud_threshold: float
    cloud_cover: float
    """Percent of valid pixels that are cloudy (eo:cloud_cover, computed from the mask)."""
    edge: tuple[float, float, float] | None
    vigour: float
    snow: bool
    relative_orbit: int
    tile_id: str

    @property
    def collection(self) -> str:
        return PRODUCTS[self.product].collection


def site_seed(site: str) -> int:
    return truth.seed_of(f"site:{site}")


@cache
def plan_archive() -> tuple[Scene, ...]:
    """Every scene of the archive, in a stable order."""
    scenes: list[Scene] = []
    s2_scenes: list[Scene] = []
    for spec in COLLECTIONS:
        for site in SITES:
            if site.name not in spec.sites:
                continue
            for epsg, region in _tiles(site, spec.half_size_m):
                for when in _dates(site, spec):
                    sc = _scene(spec.product, site, epsg, region, when, spec.platforms)
                    scenes.append(sc)
                    if spec.product == "s2_l2a":
                        s2_scenes.append(sc)
    for s2 in s2_scenes:
        scenes.append(_s1_for(s2))
    return tuple(scenes)


@cache
def scene_index() -> dict[str, Scene]:
    return {s.item_id: s for s in plan_archive()}


def _tiles(site: Site, half: float) -> list[tuple[int, tuple[float, float, float, float]]]:
    """(EPSG, site-local region) per tile; a site on a zone boundary gets one overlapping tile per zone."""
    if len(site.epsgs) == 1:
        return [(site.epsgs[0], (-half, -half, half, half))]
    # west tile covers up to a third past the centre, east tile from a third before it
    return [(site.epsgs[0], (-half, -half, half / 3, half)), (site.epsgs[1], (-half / 3, -half, half, half))]


def _dates(site: Site, spec: CollectionSpec) -> list[dt.datetime]:
    out = []
    hour = spec.hour_utc_at_greenwich - site.lon / 15.0
    for year in spec.years:
        for ref in REFERENCE_DATES:
            centre = dt.date.fromisoformat(f"{year}-{ref}")
            for k, off in enumerate(spec.offsets_days):
                jitter = int(truth.mix(site_seed(site.name), year, k, hash_str(spec.product)) % np.uint64(5)) - 2
                day = centre + dt.timedelta(days=off + jitter)
                t = dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC) + dt.timedelta(hours=hour % 24)
                out.append(t.replace(microsecond=0))
    return out


def hash_str(s: str) -> int:
    return truth.seed_of(s) & 0xFFFFFFFF


def _scene(product: str, site: Site, epsg: int, region: tuple[float, ...], when: dt.datetime,
           platforms: tuple[str, ...] = ()) -> Scene:
    p = PRODUCTS[product]
    platforms = platforms or p.platforms
    key = f"{product}:{site.name}:{epsg}:{when.isoformat()}"
    seed = truth.seed_of(key)
    u = truth.unit(truth.mix(seed, 1))
    # cloud cover: ~55 % clear-ish (0-6 %), ~25 % moderate (6-35 %), ~20 % cloudy (35-100 %)
    if u < 0.55:
        target = 0.06 * u / 0.55
    elif u < 0.8:
        target = 0.06 + 0.29 * (u - 0.55) / 0.25
    else:
        target = 0.35 + 0.65 * (u - 0.8) / 0.2
    if p.kind == "sar":
        target = 0.0
    edge = _edge(seed, region, EDGE_SHARE[p.kind if p.kind != "optical" else scene_family(product)])
    bounds = _grid_bounds(epsg, site, region, max(b.resolution_m for b in p.bands))
    thr, cover = _cloud_threshold(seed, region, edge, target)
    doy = when.timetuple().tm_yday
    orbit = int(truth.mix(seed, 5) % np.uint64(175)) + 1
    plat = platforms[int(truth.mix(seed, 6) % np.uint64(len(platforms)))]
    return Scene(
        item_id=_item_id(p.name, plat, when, epsg, site, orbit),
        product=product,
        site=site.name,
        epsg=epsg,
        bounds=bounds,
        region=tuple(region),  # type: ignore[arg-type]
        datetime=when,
        platform=plat,
        seed=seed,
        cloud_threshold=thr,
        cloud_cover=cover,
        edge=edge,
        vigour=truth.vigour(doy, site.lat),
        snow=truth.snowy(doy, site.lat),
        relative_orbit=orbit,
        tile_id=_tile_id(epsg, site),
    )


def _s1_for(s2: Scene) -> Scene:
    site = next(s for s in SITES if s.name == s2.site)
    u = truth.unit(truth.mix(s2.seed, 21))
    delta = -3 + int(u * 8) if u < 0.85 else 8 + int((u - 0.85) * 20)  # 15 % too far for a 6-day match
    when = (s2.datetime + dt.timedelta(days=delta)).replace(hour=int((5.8 - site.lon / 15) % 24), minute=31)
    region = (-S1_SPEC.half_size_m,) * 2 + (S1_SPEC.half_size_m,) * 2
    if len(site.epsgs) > 1:
        region = next(r for e, r in _tiles(site, S1_SPEC.half_size_m) if e == s2.epsg)
    return _scene("s1_grd", site, s2.epsg, region, when)


EDGE_SHARE = {"sar": 0.1, "sentinel-2": 0.25, "landsat": 0.2, "hyperspectral": 0.4}
"""Share of scenes whose swath edge cuts the site (wide swaths rarely; EnMAP's 30 km swath often)."""


def scene_family(product: str) -> str:
    return "landsat" if product.startswith("landsat") else "sentinel-2"


def _edge(seed: int, region: tuple[float, ...], share: float) -> tuple[float, float, float] | None:
    """A swath edge cutting ``share`` of the scenes (nodata beyond it)."""
    if truth.unit(truth.mix(seed, 31)) > share:
        return None
    beta = 2 * math.pi * float(truth.unit(truth.mix(seed, 32)))
    half = max(region[2] - region[0], region[3] - region[1]) / 2
    cx, cy = (region[0] + region[2]) / 2, (region[1] + region[3]) / 2
    d = cx * math.cos(beta) + cy * math.sin(beta) + (float(truth.unit(truth.mix(seed, 33))) - 0.3) * half
    return (math.cos(beta), math.sin(beta), d)


def _cloud_threshold(seed: int, region: tuple[float, ...], edge: tuple[float, float, float] | None,
                     target: float) -> tuple[float, float]:
    """Threshold of the cloud field giving ``target`` cloudy fraction of the valid area, and that fraction (%)."""
    xs = np.arange(region[0] + 50, region[2], 100.0)
    ys = np.arange(region[1] + 50, region[3], 100.0)
    x, y = np.meshgrid(xs, ys)
    valid = truth.valid_mask(x, y, edge)
    f = truth.cloud_field(x, y, seed)[valid]
    if target <= 0 or f.size == 0:
        return 2.0, 0.0
    thr = float(np.quantile(f, 1 - target))
    return thr, round(100.0 * float(np.mean(f > thr)), 2)


@cache
def _grid_bounds(epsg: int, site: Site, region: tuple[float, ...], snap: float) -> tuple[float, float, float, float]:
    """Bounding box of the site-local region in the scene CRS, snapped outward to ``snap`` metres."""
    tr = truth.to_site(epsg, site.lon, site.lat)
    xs = np.linspace(region[0], region[2], 21)
    ys = np.linspace(region[1], region[3], 21)
    gx, gy = np.meshgrid(xs, ys)
    ex, ey = tr.transform(gx.ravel(), gy.ravel(), direction="INVERSE")
    return (math.floor(min(ex) / snap) * snap, math.floor(min(ey) / snap) * snap,
            math.ceil(max(ex) / snap) * snap, math.ceil(max(ey) / snap) * snap)


def _tile_id(epsg: int, site: Site) -> str:
    zone = epsg % 100
    band = "CDEFGHJKLMNPQRSTUVWXX"[int((site.lat + 80) // 8)]
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    h = truth.seed_of(site.name)
    return f"{zone:02d}{band}{letters[h % 24]}{letters[(h >> 8) % 20]}"


def _item_id(product: str, plat: str, when: dt.datetime, epsg: int, site: Site, orbit: int) -> str:
    ts = when.strftime("%Y%m%dT%H%M%S")
    tile = _tile_id(epsg, site)
    proc = (when + dt.timedelta(days=2)).strftime("%Y%m%dT%H%M%S")
    if product in ("s2_l2a", "s2_l1c"):
        lvl = "MSIL2A" if product == "s2_l2a" else "MSIL1C"
        return f"S2{plat[-1].upper()}_{lvl}_{ts}_R{orbit:03d}_T{tile}_{proc}"
    if product.startswith("landsat"):
        lvl = "L2SP" if product.endswith("sr") else "L1TP"
        sat = {"landsat-9": "LC09", "landsat-8": "LC08", "landsat-7": "LE07", "landsat-5": "LT05",
               "landsat-4": "LT04"}[plat]
        path, row = 100 + orbit % 100, int(60 - site.lat / 1.5) % 248
        return f"{sat}_{lvl}_{path:03d}{row:03d}_{when:%Y%m%d}_02_T1"
    if product == "s1_grd":
        end = (when + dt.timedelta(seconds=25)).strftime("%Y%m%dT%H%M%S")
        return f"S1{plat[-1].upper()}_IW_GRDH_1SDV_{ts}_{end}_{orbit:06d}_{epsg % 1000:06X}"
    if product == "enmap_l2a":
        return f"ENMAP01-____L2A-DT{truth.seed_of(tile + ts) % 10**10:010d}_{ts}Z_001_V010502_{proc}Z"
    raise ValueError(f"no id scheme for product {product!r}")
