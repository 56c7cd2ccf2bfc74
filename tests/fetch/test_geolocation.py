"""Fetched patches land where the archive's truth function says, to a small fraction of a pixel, through every
search path (STAC API on pgstac, stac-geoparquet, ItemCollection) with COGs served over loopback HTTP."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from pipeline.archive.plan import scene_index
from pipeline.archive.truthcheck import subpixel_offset
from pipeline.fetch.grid import utm_epsg
from pipeline.fetch.location import fetch_location
from pipeline.fetch.read import GdalReader
from pipeline.fetch.request import FetchParams, LocationTask, product_request
from pipeline.fetch.seasons import location_year, windows
from pipeline.sources import SourceSpec, open_source

POINTS = {
    "munich": (11.57, 48.13),
    "london-west-zone30": (-0.02, 51.47),  # on the zone-30 grid; scenes come from both zones' tiles
    "london-east-zone31": (0.015, 51.485),
    "tromso-69N": (18.95, 69.65),
    "sao-paulo-south": (-46.64, -23.55),
}


def params(url: str, products: tuple, **kw) -> FetchParams:
    base = dict(
        source=SourceSpec(url), products=products, reference_dates=("03-20", "06-21", "09-22", "12-21"),
        half_width_days=30, years=(2023, 2024), season_seed=0, max_scene_cloud=100.0, max_patch_cloud=1.0,
        max_patch_nodata=0.5, s1_max_days=6.0, max_candidates=5, timeout_s=20.0, retries=2,
    )
    base.update(kw)
    return FetchParams(**base)


@pytest.fixture(scope="module")
def pool():
    with ThreadPoolExecutor(8) as p:
        yield p


def fetch(url: str, lid: int, lon: float, lat: float, products: tuple, pool, **kw):
    p = params(url, products, **kw)
    r = fetch_location(LocationTask(lid, lon, lat, utm_epsg(lon, lat)), p, open_source(p.source), GdalReader(), pool)
    assert r.ok, f"location {lid} failed: {r.reason} {r.detail}"
    return r, p


def check_product(r, name: str, max_px: float, max_rms: float, band_step: int = 1) -> None:
    m = r.meta.products[name]
    arr = r.arrays[name]
    assert arr.shape == (4, len(m.bands), m.patch_px, m.patch_px)
    for t, pick in enumerate(m.seasons):
        obs = {b: arr[t, i] for i, b in enumerate(m.bands) if i % band_step == 0}
        off = subpixel_offset(obs, pick.scene_id, m.transform, r.meta.epsg, sar_db=name.startswith("s1"))
        assert off.n > 1000, f"{name} season {t}: too few clear interior pixels ({off.n})"
        assert off.magnitude_px < max_px, f"{name} season {t} {pick.scene_id}: offset {off}"
        assert off.rms_dn < max_rms, f"{name} season {t} {pick.scene_id}: residual {off}"


@pytest.mark.parametrize("where", list(POINTS))
def test_s2_and_s1_geolocation_stac_api(served_pgstac, pool, where: str) -> None:
    lon, lat = POINTS[where]
    prods = (product_request("s2_l2a", None, None), product_request("s1_grd", None, None))
    r, _ = fetch(served_pgstac.stac_url, 7, lon, lat, prods, pool, s1_max_days=20.0)  # matching is tested elsewhere
    check_product(r, "s2_l2a", max_px=0.02, max_rms=1.5)
    check_product(r, "s1_grd", max_px=0.02, max_rms=0.05)
    assert r.meta.epsg == utm_epsg(lon, lat)


def test_geoparquet_and_item_collection_match_stac_api(served_pgstac, served_geoparquet, pool) -> None:
    lon, lat = POINTS["london-east-zone31"]
    prods = (product_request("s2_l2a", None, None),)
    results = [fetch(url, 3, lon, lat, prods, pool)[0] for url in
               (served_pgstac.stac_url, str(served_geoparquet.geoparquet), str(served_geoparquet.item_collection))]
    ids = [[s.scene_id for s in r.meta.products["s2_l2a"].seasons] for r in results]
    assert ids[0] == ids[1] == ids[2]
    np.testing.assert_array_equal(results[0].arrays["s2_l2a"], results[1].arrays["s2_l2a"])
    np.testing.assert_array_equal(results[0].arrays["s2_l2a"], results[2].arrays["s2_l2a"])
    check_product(results[1], "s2_l2a", max_px=0.02, max_rms=1.5)


def test_all_products_co_registered(served_geoparquet, pool) -> None:
    """S2, S1, Landsat and EnMAP of one location share the centre and land on the truth."""
    lon, lat = POINTS["munich"]
    prods = (
        product_request("s2_l2a", 132, None),
        product_request("s1_grd", 132, None),
        product_request("landsat_oli_sr", 44, None),
        product_request("enmap_l2a", 44, ("b010", "b045", "b080", "b150", "b200")),
    )
    r, _ = fetch(str(served_geoparquet.geoparquet), 0, lon, lat, prods, pool, s1_max_days=20.0)  # 0: year 2024
    centres = set()
    for name, m in r.meta.products.items():
        a, _, c, _, e, f = m.transform
        centres.add((round(c + a * m.patch_px / 2, 6), round(f + e * m.patch_px / 2, 6)))
        assert m.patch_px * m.resolution_m == 1320.0, name
    assert len(centres) == 1, f"products do not share the centre: {centres}"
    check_product(r, "s2_l2a", 0.02, 1.5, band_step=3)
    check_product(r, "s1_grd", 0.02, 0.05)
    check_product(r, "landsat_oli_sr", 0.02, 5.0)
    check_product(r, "enmap_l2a", 0.02, 1.5)


def test_seasons_windows_and_least_cloudy(served_geoparquet, pool) -> None:
    lon, lat = POINTS["sao-paulo-south"]
    prods = (product_request("s2_l2a", 64, ("B04", "B08")),)
    r, p = fetch(str(served_geoparquet.geoparquet), 5, lon, lat, prods, pool, max_scene_cloud=100.0)
    year = location_year(p.years, p.season_seed, 5)
    wins = windows(p.reference_dates, p.half_width_days, year)
    idx = scene_index()
    for w, pick in zip(wins, r.meta.products["s2_l2a"].seasons, strict=True):
        t = dt.datetime.fromisoformat(pick.datetime)
        assert w.start <= t <= w.end
        # no scene of the window that covers the whole site (no swath edge) is less cloudy than the pick
        sc = idx[pick.scene_id]
        rivals = [s for s in idx.values() if s.product == "s2_l2a" and s.site == sc.site and s.epsg == sc.epsg
                  and w.start <= s.datetime <= w.end and s.edge is None]
        assert rivals and sc.cloud_cover <= min(s.cloud_cover for s in rivals)


@pytest.mark.parametrize(
    ("product", "years", "platforms"),
    [("landsat_tm_sr", (2010, 2011), {"landsat-5"}), ("landsat_etm_toa", (2002, 2003), {"landsat-7"}),
     ("landsat_oli_sr", (2023, 2024), {"landsat-8", "landsat-9"})],
)
@pytest.mark.parametrize("path", ["stac-api", "geoparquet"])
def test_landsat_sensors_share_a_collection_and_are_told_apart(
    served_pgstac, served_geoparquet, pool, product: str, years: tuple, platforms: set, path: str
) -> None:
    url = served_pgstac.stac_url if path == "stac-api" else str(served_geoparquet.geoparquet)
    lon, lat = POINTS["munich"]
    r, _ = fetch(url, 0, lon, lat, (product_request(product, 44, None),), pool, years=years)
    idx = scene_index()
    picks = r.meta.products[product].seasons
    assert {idx[s.scene_id].platform for s in picks} <= platforms
    assert {idx[s.scene_id].product for s in picks} == {product}
    check_product(r, product, 0.02, 5.0)
