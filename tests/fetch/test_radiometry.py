"""Scale and offset per band and acquisition: parsed from the catalog's raster:bands, Sentinel-2's processing
baseline rule where a catalog publishes none, kept through staging."""

from __future__ import annotations

import datetime as dt
import math

import pystac
import pytest

from pipeline.fetch.radiometry import S2_OFFSET, band_radiometry, s2_has_offset
from pipeline.fetch.request import product_request
from pipeline.sources import AssetRef, SceneRef
from pipeline.sources.base import scene_ref
from pipeline.staging import SeasonPick, StagedLocation, StagedProduct

T = dt.datetime(2023, 6, 1, 10, tzinfo=dt.UTC)


def _item(props: dict, raster: list | None, asset: str = "B04") -> pystac.Item:
    item = pystac.Item("x", {"type": "Point", "coordinates": [0, 0]}, [0, 0, 0, 0], T, props, collection="c")
    extra = {"raster:bands": raster} if raster is not None else {}
    item.add_asset(asset, pystac.Asset("https://example.test/x.tif", extra_fields=extra))
    return item


def test_raster_bands_are_parsed_per_band_and_absent_values_stay_unknown() -> None:
    r = scene_ref(_item({"s2:processing_baseline": "05.10"},
                        [{"scale": 1e-4, "offset": -0.1, "nodata": 0}, {"scale": 2}, {"offset": True}, "bad"]))
    a = r.assets[0]
    assert r.processing_baseline == "05.10" and a.nodata == 0
    assert [a.radiometry(i) for i in (1, 2, 3, 4, 5)] == [(1e-4, -0.1), (2.0, None), (None, None), (None, None),
                                                         (None, None)]
    assert scene_ref(_item({"processing:version": "N0400"}, None)).processing_baseline == "N0400"
    assert scene_ref(_item({}, None)).assets[0].radiometry(1) == (None, None)


def _scene(_product: str, assets: dict[str, AssetRef], baseline: str = "", when: dt.datetime = T) -> SceneRef:
    return SceneRef("s", "c", when, 0.0, 32631, tuple(assets.values()), processing_baseline=baseline)


def test_published_values_win_and_sentinel2_fills_a_missing_half_from_its_rule() -> None:
    p = product_request("s2_l2a", 8, ("B02", "B04", "B08"))
    b02, b04, b08 = (r.asset for r in p.reads)
    scene = _scene("s2_l2a", {b02: AssetRef(b02, "h", 0, (2e-4,), (-0.2,)),
                              b04: AssetRef(b04, "h", 0, (1e-4,), (None,)),  # a lone scale keeps the offset
                              b08: AssetRef(b08, "h", 0, (None,), (-0.3,))}, baseline="05.10")
    assert band_radiometry(p, scene) == ((2e-4, 1e-4, 1e-4), (-0.2, S2_OFFSET, -0.3))
    landsat = product_request("landsat_oli_sr", 8, None)
    assets = {r.asset: AssetRef(r.asset, "h", 0, (2.75e-5,), (None,)) for r in landsat.reads}
    scales, offsets = band_radiometry(landsat, _scene("landsat", assets))
    assert set(scales) == {2.75e-5} and set(offsets) == {0.0}  # elsewhere the other half defaults as STAC says


def test_a_single_raster_bands_entry_holds_for_every_band_of_the_asset() -> None:
    enmap = product_request("enmap_l2a", 8, ("b001", "b002", "b100"))
    asset = enmap.reads[0].asset
    one = _scene("enmap_l2a", {asset: AssetRef(asset, "h", -32768, (1e-4,), (0.0,))})
    assert band_radiometry(enmap, one) == ((1e-4,) * 3, (0.0,) * 3)


@pytest.mark.parametrize(("baseline", "when", "offset"), [
    ("05.10", T, True), ("04.00", T, True), ("N0400", T, True), ("03.01", T, False), ("02.14", T, False),
    # no baseline named: ESA's switch date decides
    ("", dt.datetime(2022, 1, 24, 23, tzinfo=dt.UTC), False), ("", dt.datetime(2022, 1, 25, 1, tzinfo=dt.UTC), True),
    ("unknown", dt.datetime(2021, 6, 1, tzinfo=dt.UTC), False),
    ("1.0", T, True), ("1.0", dt.datetime(2021, 6, 1, tzinfo=dt.UTC), False),  # a software version, no baseline
    # a reprocessed old acquisition (baseline 05.00 of 2018 data) carries the offset: the baseline wins the date
    ("05.00", dt.datetime(2018, 6, 1, tzinfo=dt.UTC), True),
])
def test_sentinel2_without_published_values_follows_the_processing_baseline(baseline: str, when: dt.datetime,
                                                                            offset: bool) -> None:
    p = product_request("s2_l1c", 8, ("B02", "B8A"))
    scene = _scene("s2_l1c", {r.asset: AssetRef(r.asset, "h", 0) for r in p.reads}, baseline, when)
    assert s2_has_offset(scene) is offset
    assert band_radiometry(p, scene) == ((1e-4, 1e-4), (S2_OFFSET if offset else 0.0,) * 2)


def test_sar_is_stored_in_db_and_other_products_without_values_are_unknown() -> None:
    s1 = product_request("s1_grd", 8, None)
    scene = _scene("s1_grd", {r.asset: AssetRef(r.asset, "h", 0, (7.0,), (7.0,)) for r in s1.reads})
    assert band_radiometry(s1, scene) == ((1.0, 1.0), (0.0, 0.0))
    enmap = product_request("enmap_l2a", 8, ("b001", "b002"))
    asset = enmap.reads[0].asset
    scales, offsets = band_radiometry(enmap, _scene("enmap_l2a", {asset: AssetRef(asset, "h", -32768)}))
    assert all(math.isnan(v) for v in scales + offsets) and len(scales) == 2


def test_staged_meta_keeps_scale_and_offset_and_reads_older_meta_without_them() -> None:
    pick = SeasonPick(0, "2023-06-01T10:00:00+00:00", "S", "", "c", 0.0, 0.0, (1e-4, math.nan), (-0.1, math.nan))
    meta = StagedLocation(1, 0.0, 0.0, 32631, {"p": StagedProduct("p", ("a", "b"), "uint16", 2, 10.0,
                                                                  (10, 0, 0, 0, -10, 0), (pick,))})
    back = StagedLocation.from_json(meta.to_json()).products["p"].seasons[0]
    assert back.scale[0] == 1e-4 and math.isnan(back.scale[1]) and back.offset[0] == -0.1
    old = meta.to_json().replace('"scale"', '"x_scale"').replace('"offset"', '"x_offset"')
    import json

    d = json.loads(old)
    for s in d["products"]["p"]["seasons"]:
        del s["x_scale"], s["x_offset"]
    assert StagedLocation.from_json(json.dumps(d)).products["p"].seasons[0].scale == ()
