"""The embedded archive meets its brief: sites, time span, clouds consistent with masks, nodata edges, real-catalog
conventions, land-cover labels equal to the truth, and a deterministic truth function."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import rasterio

from pipeline.archive import truth
from pipeline.archive.build import MARKER, require_current
from pipeline.archive.plan import COLLECTIONS, REFERENCE_DATES, SITE_MIXTURE, plan_archive, site_seed
from pipeline.archive.render import render_band
from pipeline.archive.sites import SITES
from pipeline.errors import ArchiveError
from pipeline.fetch.grid import utm_epsg
from pipeline.products import PRODUCTS


@pytest.fixture(scope="module")
def items(archive_root: Path) -> dict[str, dict]:
    out = {}
    with open(archive_root / "stac/items.ndjson") as f:
        for line in f:
            d = json.loads(line)
            out[d["id"]] = d
    return out


def test_sites_span_zones_hemispheres_arctic_and_a_boundary() -> None:
    zones = {e % 100 for s in SITES for e in s.epsgs}
    assert len(zones) >= 3
    assert any(s.lat < 0 for s in SITES) and any(s.lat > 0 for s in SITES)
    assert any(s.lat > 60 for s in SITES)
    straddle = [s for s in SITES if len(s.epsgs) == 2]
    assert straddle
    s = straddle[0]
    # the zone boundary lies inside the Sentinel-2 coverage of the site (a few km around the centre)
    assert utm_epsg(s.lon - 0.03, s.lat) != utm_epsg(s.lon + 0.03, s.lat)


def test_two_years_and_several_acquisitions_per_season(items: dict[str, dict]) -> None:
    times: dict[tuple[str, str], list[dt.datetime]] = defaultdict(list)
    for sc in plan_archive():
        times[(sc.product, sc.site)].append(sc.datetime)
    for (product, site), ts in times.items():
        assert len({t.year for t in ts}) >= 2, (product, site)
        for mmdd in REFERENCE_DATES:
            n = 0
            for year in {t.year for t in ts}:
                ref = dt.datetime.fromisoformat(f"{year}-{mmdd}T12:00:00+00:00")
                n += sum(abs((t - ref).days) <= 30 for t in ts)
            assert n >= 2, f"{product} at {site}: only {n} acquisition(s) around {mmdd}"
    assert len(items) == len(plan_archive())


def test_cloud_cover_matches_the_per_pixel_mask(archive_root: Path, items: dict[str, dict]) -> None:
    checked = 0
    for sc in plan_archive():
        if sc.product != "s2_l2a" or checked >= 6 or not 3 < sc.cloud_cover < 80:
            continue
        with rasterio.open(archive_root / items[sc.item_id]["assets"]["SCL"]["href"]) as f:
            scl = f.read(1)
        valid = scl > 0
        frac = np.isin(scl[valid], (8, 9)).mean() * 100
        assert abs(frac - items[sc.item_id]["properties"]["eo:cloud_cover"]) < 2.0, sc.item_id
        checked += 1
    assert checked == 6


def test_some_scenes_only_partly_cover_their_site(archive_root: Path, items: dict[str, dict]) -> None:
    edged = [sc for sc in plan_archive() if sc.edge is not None and sc.product == "s2_l2a"]
    assert len(edged) > 10
    with rasterio.open(archive_root / items[edged[0].item_id]["assets"]["B04"]["href"]) as f:
        b4 = f.read(1)
    assert 0.02 < (b4 == 0).mean() < 0.98


def test_items_follow_the_real_catalog_conventions(items: dict[str, dict]) -> None:
    by_col = defaultdict(list)
    for d in items.values():
        by_col[d["collection"]].append(d)
    assert {"sentinel-2-l2a", "sentinel-2-l1c", "sentinel-1-grd", "landsat-c2-l2", "landsat-c2-l1",
            "ENMAP_HSI_L2A"} <= set(by_col)
    s2 = by_col["sentinel-2-l2a"][0]
    assert {"B02", "B03", "B04", "B08", "B8A", "B11", "B12", "SCL"} <= set(s2["assets"])
    assert s2["properties"]["proj:code"].startswith("EPSG:326") or s2["properties"]["proj:code"].startswith("EPSG:327")
    rb = s2["assets"]["B04"]["raster:bands"][0]
    assert rb["scale"] == 1e-4 and rb["offset"] == pytest.approx(-0.1) and rb["nodata"] == 0
    assert s2["assets"]["B04"]["eo:bands"][0]["common_name"] == "red"
    assert s2["assets"]["B04"]["proj:shape"][0] == 2 * s2["assets"]["B05"]["proj:shape"][0]
    assert "s2:mgrs_tile" in s2["properties"] and 0 <= s2["properties"]["eo:cloud_cover"] <= 100
    l1c = by_col["sentinel-2-l1c"][0]
    assert {"coastal", "blue", "red", "nir", "cirrus", "swir22"} <= set(l1c["assets"])  # Earth Search keys
    s1 = by_col["sentinel-1-grd"][0]
    assert set(s1["assets"]) == {"vv", "vh"} and s1["properties"]["sar:polarizations"] == ["VV", "VH"]
    ls = by_col["landsat-c2-l2"]
    assert {d["properties"]["platform"] for d in ls} >= {"landsat-5", "landsat-7", "landsat-8", "landsat-9"}
    assert "qa_pixel" in ls[0]["assets"]
    en = by_col["ENMAP_HSI_L2A"][0]
    assert len(en["assets"]["image"]["eo:bands"]) == 224
    assert en["assets"]["image"]["raster:bands"][0]["nodata"] == -32768


def test_landcover_map_is_the_truth(archive_root: Path) -> None:
    site = SITES[0]
    with rasterio.open(archive_root / f"landcover/{site.name.replace(' ', '_')}.tif") as f:
        lc = f.read(1)
        t = f.transform
        rows, cols = np.mgrid[0:lc.shape[0]:97, 0:lc.shape[1]:89]
        ex, ey = rasterio.transform.xy(t, rows.ravel(), cols.ravel())
        x, y = truth.to_site(f.crs.to_epsg(), site.lon, site.lat).transform(ex, ey)
    expect = truth.landcover(np.asarray(x), np.asarray(y), site_seed(site.name), SITE_MIXTURE[site.name])
    np.testing.assert_array_equal(lc[rows.ravel(), cols.ravel()], expect)
    legend = json.loads((archive_root / "landcover/classes.json").read_text())
    assert set(np.unique(lc)) <= {int(k) for k in legend["classes"]}


def test_truth_is_deterministic_and_scene_specific() -> None:
    sc = [s for s in plan_archive() if s.product == "s2_l2a"][:2]
    b = PRODUCTS["s2_l2a"].band("B04")
    a1, a2 = render_band(sc[0], b), render_band(sc[0], b)
    np.testing.assert_array_equal(a1, a2)
    assert sc[0].bounds == sc[1].bounds
    other = render_band(sc[1], b)
    assert np.mean(a1 != other) > 0.5  # another acquisition of the same tile differs (phase, clouds, season)


def test_archive_is_current_and_small(archive_root: Path) -> None:
    meta = json.loads((archive_root / MARKER).read_text())
    assert meta["n_items"] == len(plan_archive())
    size = sum(p.stat().st_size for p in archive_root.rglob("*") if p.is_file())
    assert size < 1024**3
    assert {c.product for c in COLLECTIONS} <= set(PRODUCTS)


def test_missing_archive_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="ssl4eo archive build"):
        require_current(tmp_path / "nowhere")
