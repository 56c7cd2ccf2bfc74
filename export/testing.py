"""Synthetic staged locations for tests and benchmarks (importable test-data builders; no network, no archive)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from export.model import ProductLayout
from pipeline.fetch.grid import utm_epsg
from pipeline.fetch.radiometry import S2_OFFSET_SINCE
from pipeline.staging import SeasonPick, StagedLocation, StagedProduct, write_location

SEASON_DATES = ("03-20", "06-21", "09-22", "12-21")


def synthetic_patch(rng: np.random.Generator, layout: ProductLayout, n_times: int, noise: float = 25.0) -> np.ndarray:
    """(time, band, y, x) of smooth fields plus Gaussian noise, like real reflectance (pessimistic for codecs)."""
    c, p = len(layout.bands), layout.patch_px
    cell = max(2, p // 11)
    small = rng.normal(size=(n_times, c, p // cell + 2, p // cell + 2))
    field = np.repeat(np.repeat(small, cell, axis=2), cell, axis=3)[..., :p, :p]
    dtype = np.dtype(layout.dtype)
    if dtype.kind == "f":  # SAR-like dB values
        return (-12.0 + 3.0 * field + rng.normal(scale=noise / 25, size=field.shape)).astype(dtype)
    base = 1500.0 + 100.0 * np.arange(c)[None, :, None, None]
    arr = base + 600.0 * field + rng.normal(scale=noise, size=field.shape)
    lo = 1 if layout.nodata == 0 else np.iinfo(dtype).min + 1
    return np.clip(arr, lo, np.iinfo(dtype).max).astype(dtype)


def utm_transform(lon: float, lat: float, epsg: int, layout: ProductLayout) -> tuple[float, ...]:
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    half = layout.patch_px * layout.resolution_m / 2
    r = layout.resolution_m
    return (r, 0.0, float(round(x - half)), 0.0, -r, float(round(y + half)))


def stage_synthetic(
    out: Path,
    layouts: Sequence[ProductLayout],
    location_ids: Sequence[int],
    *,
    seed: int = 0,
    year: int = 2023,
    season_dates: Sequence[str] = SEASON_DATES,
    scene_href: str = "https://example.test/stac/collections/{collection}/items/{scene}",
) -> list[StagedLocation]:
    """Write one complete staged location per id with :func:`pipeline.staging.write_location`."""
    metas = []
    for loc in location_ids:
        rng = np.random.default_rng([seed, loc])
        lon, lat = float(rng.uniform(-170, 170)), float(rng.uniform(-60, 65))
        epsg = utm_epsg(lon, lat)
        prods, arrays = {}, {}
        for layout in layouts:
            picks = []
            for t, mmdd in enumerate(season_dates):
                when = dt.datetime.fromisoformat(f"{year}-{mmdd}T10:30:00+00:00") + dt.timedelta(
                    days=int(rng.integers(-20, 20)), seconds=int(rng.integers(0, 3600)))
                scene = f"{layout.collection or layout.name}-{loc:07d}-{t}"
                c = len(layout.bands)
                sar = np.dtype(layout.dtype).kind == "f"  # stored in dB; every optical product as Sentinel-2's rule
                scale = (1.0,) * c if sar else (1e-4,) * c
                offset = (0.0,) * c if sar or when < S2_OFFSET_SINCE else (-0.1,) * c
                picks.append(SeasonPick(
                    season=t, datetime=when.strftime("%Y-%m-%dT%H:%M:%SZ"), scene_id=scene,
                    scene_href=scene_href.format(collection=layout.collection, scene=scene),
                    collection=layout.collection, cloud_fraction=round(float(rng.uniform(0, 0.1)), 4),
                    nodata_fraction=0.0, scale=scale, offset=offset))
            prods[layout.name] = StagedProduct(
                layout.name, tuple(layout.bands), layout.dtype, layout.patch_px, layout.resolution_m,
                utm_transform(lon, lat, epsg, layout), tuple(picks))  # type: ignore[arg-type]
            arrays[layout.name] = synthetic_patch(rng, layout, len(season_dates))
        meta = StagedLocation(int(loc), round(lon, 6), round(lat, 6), epsg, prods)
        write_location(out, meta, arrays)
        metas.append(meta)
    return metas
