"""Check fetched pixels against the archive's truth function (used by tests and benchmarks).

``subpixel_offset`` evaluates the truth of the claimed source scene at the output pixel centres and solves the
residual ``observed - truth ~ grad(truth) . delta`` for the offset ``delta`` by least squares, over pixels whose
neighbourhood is one land-cover class, cloud-free and inside the swath (where the truth is smooth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.archive import truth
from pipeline.archive.plan import SITE_MIXTURE, scene_index, site_seed
from pipeline.archive.render import values_at
from pipeline.archive.sites import site_by_name
from pipeline.products import PRODUCTS


@dataclass(frozen=True)
class Offset:
    dx_px: float
    dy_px: float
    rms_dn: float
    """RMS residual after removing the fitted offset (rounding, resampling curvature)."""
    n: int

    @property
    def magnitude_px(self) -> float:
        return float(np.hypot(self.dx_px, self.dy_px))


def pixel_centres_local(scene_id: str, transform: tuple[float, ...], px: int, epsg: int) -> tuple[np.ndarray, ...]:
    sc = scene_index()[scene_id]
    site = site_by_name(sc.site)
    a, _, c, _, e, f = transform[:6]
    cols = c + (np.arange(px) + 0.5) * a
    rows = f + (np.arange(px) + 0.5) * e
    ex, ey = np.meshgrid(cols, rows)
    x, y = truth.to_site(epsg, site.lon, site.lat).transform(ex, ey)
    return np.asarray(x), np.asarray(y)


def expected(scene_id: str, band: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Truth (float DN, NaN outside the swath) of ``band`` of scene ``scene_id`` at site-local metres."""
    sc = scene_index()[scene_id]
    return values_at(sc, PRODUCTS[sc.product].band(band), x, y)


def subpixel_offset(observed: dict[str, np.ndarray], scene_id: str, transform: tuple[float, ...], epsg: int,
                    sar_db: bool = False) -> Offset:
    """Offset (pixels) of the observed bands (name -> 2-D array on the grid ``transform``) from the truth."""
    sc = scene_index()[scene_id]
    px = next(iter(observed.values())).shape[-1]
    res = abs(transform[0])
    x, y = pixel_centres_local(scene_id, transform, px, epsg)
    cls = truth.landcover(x, y, site_seed(sc.site), SITE_MIXTURE[sc.site])
    cloud = truth.cloud_mask(x, y, sc.seed, sc.cloud_threshold)
    valid = truth.valid_mask(x, y, sc.edge)
    nodata = PRODUCTS[sc.product].nodata
    seen = np.ones(cls.shape, dtype=bool)  # observed in every band: outside the source raster is nodata too
    for obs in observed.values():
        seen &= np.isfinite(obs) & (obs != nodata)
    masks: dict[int, np.ndarray] = {}
    rows, gx, gy = [], [], []
    h = 0.5
    for name, obs in observed.items():
        b = PRODUCTS[sc.product].band(name)
        radius = max(1, int(np.ceil(b.resolution_m / res)) + 1)  # source pixels used by the bilinear kernel
        if radius not in masks:
            masks[radius] = truth.interior_mask(cls, cloud, valid & seen, radius=radius) & valid & seen & ~cloud
        ok = masks[radius]
        e0 = values_at(sc, b, x, y, cls)
        ex1 = values_at(sc, b, x + h, y, cls)
        ex0 = values_at(sc, b, x - h, y, cls)
        ey1 = values_at(sc, b, x, y + h, cls)
        ey0 = values_at(sc, b, x, y - h, cls)
        if sar_db:  # observed in dB: compare in dB
            k = 60.0
            e0, ex1, ex0, ey1, ey0 = (20 * np.log10(v) - k for v in (e0, ex1, ex0, ey1, ey0))
        m = ok & np.isfinite(obs) & np.isfinite(e0)
        rows.append((obs.astype(np.float64) - e0)[m])
        gx.append(((ex1 - ex0) / (2 * h))[m])
        gy.append(((ey1 - ey0) / (2 * h))[m])
    r, a, b_ = np.concatenate(rows), np.concatenate(gx), np.concatenate(gy)
    if r.size < 10:
        raise ValueError(f"only {r.size} usable pixels to estimate an offset for scene {scene_id}")
    design = np.stack([a, b_], axis=1)
    (dx, dy), *_ = np.linalg.lstsq(design, r, rcond=None)
    rms = float(np.sqrt(np.mean((r - design @ np.array([dx, dy])) ** 2)))
    return Offset(float(dx) / res, float(dy) / res, rms, int(r.size))
