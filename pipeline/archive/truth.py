"""The archive's truth function: every pixel is a documented deterministic function of ground position, band and
acquisition, so a test can tell where and from which scene any output pixel came, to sub-pixel accuracy.

Ground position is expressed in the *site-local frame*: metres east/north of the site centre in an azimuthal
equidistant projection centred on the site (``site_crs``). Independent of any scene's UTM zone, it serves scenes
on both sides of a zone boundary. For a pixel at site-local ``(x, y)`` of a scene ``s`` and band ``b``::

    class(x, y)      = land cover: a jittered-grid Voronoi map (cells ~LC_CELL_M), class drawn per cell from the
                       site's mixture (built-up more likely near the centre); static, the label map of the site
    rho(x, y)        = spectra.reflectance(class, centre_wavelength(b), vigour(doy, lat), snow(doy, lat))
                       or spectra.cloud_reflectance(lambda) where cloud(x, y, s) = cloud_field(x, y, s) > t_s
    pattern(x, y)    = A * sin(2 pi (x cos theta_b + y sin theta_b) / P + phi_s)     [reflectance units]
                       theta_b = k_b * 137.508 deg (k_b: 1-based band ordinal), phi_s = per-scene phase
    value            = encode(rho + pattern) in the product's DN convention (see ``encode_*``)
    nodata           where the scene's swath edge cuts the site: x cos beta_s + y sin beta_s > d_s

The pattern makes position recoverable: its gradient is ~2 pi A / P per metre along theta_b and two bands have
different theta, so a residual against the truth at the claimed pixel centres gives the sub-pixel offset by least
squares (``tests`` do exactly that). ``phi_s`` differs per scene, so a pixel from the wrong scene is far off.
Bilinear resampling of the smooth pattern is exact to well under 1 DN; class and cloud edges are not smooth, so
geolocation checks use pixels whose neighbourhood is one class and cloud-free (``interior_mask``).
"""

from __future__ import annotations

import numpy as np
from pyproj import CRS, Transformer

LC_CELL_M = 400.0
PATTERN_A = 0.03
PATTERN_P = 1500.0
GOLDEN_DEG = 137.50776405
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def site_crs(lon0: float, lat0: float) -> CRS:
    """The site-local frame: azimuthal equidistant centred on the site, metres."""
    return CRS.from_proj4(f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m +no_defs")


def to_site(epsg: int, lon0: float, lat0: float) -> Transformer:
    """Transformer from a scene CRS (EPSG code, 4326 for lon/lat) into the site-local frame."""
    return Transformer.from_crs(CRS.from_epsg(epsg), site_crs(lon0, lat0), always_xy=True)


# --- hashing -------------------------------------------------------------------------------------------------


def mix(*parts: np.ndarray | int) -> np.ndarray:
    """A splitmix64-style hash of integers (arrays broadcast), platform-independent."""
    with np.errstate(over="ignore"):
        h = np.uint64(0x9E3779B97F4A7C15)
        for p in parts:
            v = np.asarray(p).astype(np.int64).astype(np.uint64)
            h = (h ^ v) * np.uint64(0xBF58476D1CE4E5B9)
            h = (h ^ (h >> np.uint64(31))) * np.uint64(0x94D049BB133111EB)
            h = h ^ (h >> np.uint64(29))
    return h


def unit(h: np.ndarray) -> np.ndarray:
    """Hash -> uniform float in [0, 1)."""
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def seed_of(text: str) -> int:
    """Stable 62-bit seed of a string (scene or site id)."""
    acc = 1469598103934665603
    for ch in text.encode():
        acc = ((acc ^ ch) * 1099511628211) & 0x3FFFFFFFFFFFFFFF
    return acc


# --- land cover ----------------------------------------------------------------------------------------------


def landcover(x: np.ndarray, y: np.ndarray, site_seed: int, mixture: dict[int, float]) -> np.ndarray:
    """Land-cover class (uint8 WorldCover code) at site-local metres: jittered-grid Voronoi cells.

    ``mixture`` maps class -> weight away from the centre; built-up (50) takes over towards the centre.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ci = np.floor(x / LC_CELL_M).astype(np.int64)
    cj = np.floor(y / LC_CELL_M).astype(np.int64)
    best = np.full(x.shape, np.inf)
    bi = np.zeros(x.shape, dtype=np.int64)
    bj = np.zeros(x.shape, dtype=np.int64)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            i, j = ci + di, cj + dj
            h = mix(site_seed, i, j)
            cx = (i + 0.1 + 0.8 * unit(h)) * LC_CELL_M
            cy = (j + 0.1 + 0.8 * unit(mix(h, 7))) * LC_CELL_M
            d = (x - cx) ** 2 + (y - cy) ** 2
            closer = d < best
            best = np.where(closer, d, best)
            bi = np.where(closer, i, bi)
            bj = np.where(closer, j, bj)
    return _cell_class(bi, bj, site_seed, mixture)


def _cell_class(i: np.ndarray, j: np.ndarray, site_seed: int, mixture: dict[int, float]) -> np.ndarray:
    r = np.hypot((i + 0.5) * LC_CELL_M, (j + 0.5) * LC_CELL_M)
    p_built = 0.85 * np.exp(-r / 2200.0)
    u = unit(mix(site_seed, i, j, 99))
    classes = np.array(list(mixture), dtype=np.uint8)
    w = np.array([mixture[int(c)] for c in classes], dtype=np.float64)
    cdf = np.cumsum(w / w.sum())
    # u in [0, p_built) -> built-up, else pick from the mixture with the rescaled u
    v = np.clip((u - p_built) / np.maximum(1 - p_built, 1e-9), 0, 1 - 1e-12)
    out = classes[np.searchsorted(cdf, v, side="right").clip(0, len(classes) - 1)]
    return np.where(u < p_built, np.uint8(50), out).astype(np.uint8)


# --- per-scene fields ----------------------------------------------------------------------------------------


def pattern(x: np.ndarray, y: np.ndarray, band_ordinal: int, scene_seed: int) -> np.ndarray:
    """The position code, in reflectance units (amplitude PATTERN_A, period PATTERN_P metres)."""
    th = np.deg2rad(band_ordinal * GOLDEN_DEG)
    phi = 2 * np.pi * float(unit(mix(scene_seed, 3)))
    return PATTERN_A * np.sin(2 * np.pi * (x * np.cos(th) + y * np.sin(th)) / PATTERN_P + phi)


def cloud_field(x: np.ndarray, y: np.ndarray, scene_seed: int) -> np.ndarray:
    """Smooth field in [-1, 1]; cloudy where it exceeds the scene's threshold."""
    f = np.zeros(np.broadcast(x, y).shape)
    for k in range(4):
        h = mix(scene_seed, 11, k)
        a = 2 * np.pi * float(unit(h))
        per = 1500.0 + 3000.0 * float(unit(mix(h, 1)))
        ph = 2 * np.pi * float(unit(mix(h, 2)))
        f = f + np.sin(2 * np.pi * (x * np.cos(a) + y * np.sin(a)) / per + ph)
    return f / 4.0


def cloud_mask(x: np.ndarray, y: np.ndarray, scene_seed: int, threshold: float) -> np.ndarray:
    return cloud_field(x, y, scene_seed) > threshold


def valid_mask(x: np.ndarray, y: np.ndarray, edge: tuple[float, float, float] | None) -> np.ndarray:
    """Inside the scene's swath (edge = (cos beta, sin beta, d) in site-local metres; None: no edge)."""
    if edge is None:
        return np.ones(np.broadcast(x, y).shape, dtype=bool)
    cb, sb, d = edge
    return x * cb + y * sb <= d


# --- phenology -----------------------------------------------------------------------------------------------


def vigour(doy: int, lat: float) -> float:
    """Vegetation vigour 0..1 by day of year; seasons flip in the southern hemisphere, damped in the tropics."""
    if abs(lat) < 15:
        return 0.6 + 0.2 * float(np.sin(2 * np.pi * (doy - 80) / 365.25))
    shift = 0 if lat >= 0 else 182.6
    return 0.5 - 0.5 * float(np.cos(2 * np.pi * (doy - 15 - shift) / 365.25))


def snowy(doy: int, lat: float) -> bool:
    """Land is snow-covered above 55 deg latitude in the local winter (mid-November to mid-April)."""
    if abs(lat) < 55:
        return False
    d = doy if lat >= 0 else (doy + 182) % 366
    return d >= 320 or d <= 105


# --- encodings (reflectance or backscatter -> stored DN) -----------------------------------------------------

S2_OFFSET_DN = 1000  # processing baseline >= 04.00: BOA_ADD_OFFSET = -1000, so reflectance = DN * 1e-4 - 0.1
LANDSAT_SR_SCALE, LANDSAT_SR_OFFSET = 2.75e-5, -0.2
LANDSAT_TOA_SCALE, LANDSAT_TOA_OFFSET = 2.0e-5, -0.1
LANDSAT_ST_SCALE, LANDSAT_ST_OFFSET = 0.00341802, 149.0
SAR_K_DB = 60.0  # sigma0_dB = 20 log10(DN) - SAR_K_DB


def haze(lam: float) -> float:
    """Top-of-atmosphere path reflectance added to surface reflectance (Rayleigh-like, strongest in the blue)."""
    return 0.06 * (450.0 / lam) ** 4 if lam < 3000 else 0.0


def sar_pattern_db(x: np.ndarray, y: np.ndarray, band_ordinal: int, scene_seed: int) -> np.ndarray:
    """SAR position code: +/- 1.5 dB (the optical pattern rescaled)."""
    return pattern(x, y, band_ordinal, scene_seed) * (1.5 / PATTERN_A)


def surface_temperature(cls: np.ndarray, doy: int, lat: float) -> np.ndarray:
    """Land surface temperature, K: water cooler, built-up warmer; seasonal cycle."""
    base = 288.0 + 12.0 * (vigour(doy, lat) - 0.5) * 2 - 0.35 * max(abs(lat) - 30, 0)
    lut = np.full(100, base)
    lut[50] += 6
    lut[80] -= 5
    lut[60] += 4
    lut[70] = min(base, 268.0)
    return lut[cls]


def interior_mask(classes: np.ndarray, *more: np.ndarray, radius: int = 1) -> np.ndarray:
    """Pixels whose (2 radius + 1)^2 neighbourhood has one class and one value of each extra mask."""
    ok = np.ones(classes.shape, dtype=bool)
    for arr in (classes, *more):
        a = np.asarray(arr)
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                ok &= a == np.roll(np.roll(a, dy, 0), dx, 1)
    ok[:radius, :] = ok[-radius:, :] = ok[:, :radius] = ok[:, -radius:] = False
    return ok
