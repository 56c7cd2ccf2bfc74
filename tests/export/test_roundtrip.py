"""Staging -> shards -> catalog, read back with plain xarray, zarr, pandas and pystac."""

from __future__ import annotations

import json
import shutil
import socket
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pystac
import pytest
import xarray as xr
import zarr

from export.columns import iso_to_ms
from export.stac_check import validate_catalog
from export.store import ATTR
from pipeline.staging import iter_complete, read_array, read_meta
from tests.export.conftest import CREATED, IDS, SHARD, build, layouts, spec, stage


def test_groups_hold_the_staged_arrays_in_location_order(built: Path) -> None:
    folders = list(iter_complete(built))
    assert [read_meta(f).location_id for f in folders] == IDS
    for layout in layouts():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ds = xr.open_zarr(built / "dataset.zarr", group=layout.name)
        assert ds.bands.dims == ("sample", "time", "band", "y", "x")
        assert ds.bands.shape == (len(IDS), 4, len(layout.bands), 16, 16)
        assert ds.bands.dtype == np.dtype(layout.dtype)
        assert ds.bands.encoding["chunks"] == (1, 1, len(layout.bands), 16, 16)
        assert ds.bands.encoding["shards"] == (SHARD, 4, len(layout.bands), 16, 16)
        assert list(ds.band.values) == list(layout.bands)
        assert ds.location_id.values.tolist() == IDS
        assert np.issubdtype(ds.datetime.dtype, np.datetime64)
        for i, folder in enumerate(folders):
            meta = read_meta(folder)
            staged = read_array(folder, layout.name)
            np.testing.assert_array_equal(ds.bands[i].values, staged)
            p = meta.products[layout.name]
            assert ds.lon.values[i] == meta.lon and ds.epsg.values[i] == meta.epsg
            assert tuple(ds.transform.values[i]) == p.transform
            assert ds.scene_id.values[i].tolist() == [s.scene_id for s in p.seasons]
            got_ms = ds.datetime.values[i].astype("datetime64[ms]").astype(np.int64).tolist()
            assert got_ms == [iso_to_ms(s.datetime) for s in p.seasons]
            np.testing.assert_allclose(ds.cloud_fraction.values[i], [s.cloud_fraction for s in p.seasons])
            assert ds.scale.dims == ds.offset.dims == ("sample", "time", "band")
            np.testing.assert_array_equal(ds.scale.values[i], [s.scale for s in p.seasons])
            np.testing.assert_array_equal(ds.offset.values[i], [s.offset for s in p.seasons])
        # physical values by plain broadcasting, as the README shows
        phys = (ds.bands[0] * ds.scale[0] + ds.offset[0]).values
        want = read_array(folders[0], layout.name) * ds.scale.values[0][..., None, None] + ds.offset.values[0][
            ..., None, None]
        np.testing.assert_allclose(phys, want)


def test_store_describes_itself(built: Path) -> None:
    root = zarr.open_group(built / "dataset.zarr", mode="r")
    r = root.attrs[ATTR]
    assert r["status"] == "complete" and r["n_samples"] == len(IDS) and r["created"] == CREATED
    assert r["config_hash"] == "test" and r["software_version"] == "0.0.test"
    assert r["products"] == ["s2_l2a", "s1_rtc"]
    s2 = root["s2_l2a"].attrs[ATTR]
    assert s2["collection"] == "sentinel-2-l2a" and s2["nodata"] == 0 and s2["license"]
    st = s2["stats"]
    assert st["band"] == ["B02", "B03", "B04", "B08"]
    staged = np.stack([read_array(f, "s2_l2a") for f in iter_complete(built)])
    for b in range(4):
        v = staged[:, :, b].ravel()
        v = v[v != 0]
        assert st["mean"][b] == pytest.approx(v.mean(), rel=1e-9)
        assert st["std"][b] == pytest.approx(v.std(), rel=1e-9)
        assert st["p02"][b] == np.percentile(v, 2, method="lower")
        assert st["p98"][b] == np.percentile(v, 98, method="lower")
    assert list(root["s2_l2a"]["center_wavelength"][...]) == pytest.approx([492.4, 559.8, 664.6, 832.8])
    assert "center_wavelength" not in root["s1_rtc"]
    assert root["s1_rtc"].attrs[ATTR]["stats"]["count"] == [len(IDS) * 4 * 256] * 2


def test_parquet_index_has_a_row_per_product_sample_season(built: Path) -> None:
    import geopandas as gpd

    df = gpd.read_parquet(built / "dataset.parquet")
    assert len(df) == 2 * len(IDS) * 4
    assert df.crs.to_epsg() == 4326
    s1 = df[df["product"] == "s1_rtc"]
    assert s1["location_id"].tolist() == [i for i in IDS for _ in range(4)]
    assert s1["time"].tolist() == [0, 1, 2, 3] * len(IDS)
    assert set(df.columns) >= {"sample", "shard", "datetime", "scene_id", "cloud_fraction", "nodata_fraction",
                               "epsg", "geometry", "scale", "offset"}
    s2 = df[df["product"] == "s2_l2a"]
    assert [list(v) for v in s2["scale"]] == [[1e-4] * 4] * len(s2) and list(s2["offset"].iloc[0]) == [-0.1] * 4
    first = df.iloc[0]
    assert first.geometry.contains(gpd.points_from_xy([first.lon], [first.lat])[0])
    assert str(pd.Timestamp(first["datetime"]).tz) == "UTC"


def test_catalog_items_point_at_their_samples(built: Path) -> None:
    cat = pystac.Catalog.from_file(str(built / "catalog" / "catalog.json"))
    cols = {c.id: c for c in cat.get_children()}
    assert set(cols) == {"s2_l2a", "s1_rtc"}
    s2 = cols["s2_l2a"]
    assert isinstance(s2, pystac.Collection)
    assert [p.name for p in s2.providers or []][:2] == ["ESA", "Microsoft"]
    assert "data" in s2.item_assets and s2.extent.temporal.intervals[0][0] is not None
    items = sorted(s2.get_items(), key=lambda i: i.properties["ssl4eo:sample"])
    assert [i.properties["ssl4eo:location_id"] for i in items] == IDS
    ds = xr.open_zarr(built / "dataset.zarr", group="s2_l2a")
    for item in items[:3]:
        a = item.assets["data"]
        assert Path(a.get_absolute_href() or "").resolve() == (built / "dataset.zarr").resolve()
        sample = a.extra_fields["ssl4eo:sample"]
        assert ds.location_id.values[sample] == item.properties["ssl4eo:location_id"]
        assert item.properties["proj:code"] == f"EPSG:{int(ds.epsg.values[sample])}"
        assert len(item.properties["ssl4eo:datetimes"]) == 4
        derived = item.get_links("derived_from")
        assert [link.title for link in derived] == ds.scene_id.values[sample].tolist()
        assert item.datetime is None and item.properties["start_datetime"] <= item.properties["end_datetime"]
        assert item.properties["ssl4eo:city"] == f"city{item.properties['ssl4eo:location_id']}"


def test_catalog_validates_offline(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self, address):  # type: ignore[no-untyped-def]
        raise OSError(f"no network in this test ({address!r})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert validate_catalog(built / "catalog" / "catalog.json") == []
    raw = json.loads(next((built / "catalog" / "s2_l2a" / "items").glob("*.json")).read_text())
    from export.stac_check import validate_object

    raw["properties"]["proj:shape"] = [16]
    assert validate_object(raw, "broken") and "projection" in validate_object(raw, "broken")[0]


def test_rerun_keeps_finished_shards_and_new_locations_rewrite_only_what_moved(tmp_path: Path) -> None:
    out = stage(tmp_path, IDS[:16])
    first = build(out)
    assert (first.n_shards, first.written, first.kept) == (2, 2, 0)
    shard0 = out / "dataset.zarr" / "s2_l2a" / "bands" / "c" / "0" / "0" / "0" / "0" / "0"
    mtime = shard0.stat().st_mtime_ns
    again = build(out)
    assert (again.written, again.kept) == (0, 2)
    assert shard0.stat().st_mtime_ns == mtime
    good = shard0.read_bytes()
    with open(shard0, "r+b") as f:  # cut short since (a full disk, a copy gone wrong): rewritten, not kept
        f.truncate(100)
    repaired = build(out)
    assert (repaired.written, repaired.kept) == (1, 1)
    assert shard0.read_bytes() == good
    stage(out, IDS[16:])  # larger ids: appended after the existing samples
    grown = build(out)
    assert (grown.n_shards, grown.written, grown.kept) == (3, 1, 2)
    ds = xr.open_zarr(out / "dataset.zarr", group="s1_rtc")
    assert ds.location_id.values.tolist() == IDS
    np.testing.assert_array_equal(ds.bands[19].values, read_array(list(iter_complete(out))[19], "s1_rtc"))


def test_fewer_samples_leave_no_stale_shards_behind(tmp_path: Path) -> None:
    out = stage(tmp_path, IDS)
    assert build(out).n_shards == 3
    store, state = out / "dataset.zarr", out / "dataset.state"
    assert (store / "s2_l2a" / "bands" / "c" / "2").is_dir() and (state / "000002.stats.npz").is_file()
    for folder in list(iter_complete(out))[16:]:  # staging shrinks (locations moved away)
        shutil.rmtree(folder)
    assert build(out).n_shards == 2
    for p in ("s2_l2a", "s1_rtc"):
        assert sorted(d.name for d in (store / p / "bands" / "c").iterdir()) == ["0", "1"]
    assert sorted(f.name for f in state.iterdir()) == ["000000.json", "000000.stats.npz", "000001.json",
                                                       "000001.stats.npz"]
    assert xr.open_zarr(store, group="s2_l2a").location_id.values.tolist() == IDS[:16]


def test_changed_layout_rebuilds_the_store(tmp_path: Path) -> None:
    out = stage(tmp_path, IDS[:8])
    build(out)
    rebuilt = build(out, spec=spec(shard_size=4))
    assert (rebuilt.n_shards, rebuilt.written) == (2, 2)
    assert zarr.open_array(out / "dataset.zarr", path="s2_l2a/bands", mode="r").shards[0] == 4
    from pipeline.errors import UserError

    with pytest.raises(UserError, match="no complete staged location"):
        build(tmp_path / "empty")


def test_locations_staged_before_scale_and_offset_were_kept_read_as_unknown(tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    out = stage(tmp_path, IDS[:3])
    folders = list(iter_complete(out))

    def rewrite(folder: Path, change) -> None:  # type: ignore[no-untyped-def]
        d = json.loads((folder / "meta.json").read_text())
        for p in d["products"].values():
            for s in p["seasons"]:
                change(s)
        (folder / "meta.json").write_text(json.dumps(d))

    rewrite(folders[1], lambda s: (s.pop("scale"), s.pop("offset")))
    with caplog.at_level("WARNING", logger="export"):
        build(out)
    assert f"1 staged location(s) (e.g. {IDS[1]:07d}) were downloaded before scale and offset" in caplog.text
    ds = xr.open_zarr(out / "dataset.zarr", group="s2_l2a")
    assert np.isnan(ds.scale.values[1]).all() and np.isnan(ds.offset.values[1]).all()
    assert (ds.scale.values[[0, 2]] == 1e-4).all()
    import geopandas as gpd

    df = gpd.read_parquet(out / "dataset.parquet")
    mine = df[(df["location_id"] == IDS[1]) & (df["product"] == "s2_l2a")]
    assert len(mine) == 4 and np.isnan(np.stack(mine["scale"].to_numpy())).all()

    from pipeline.errors import UserError

    rewrite(folders[2], lambda s: s.update(scale=s["scale"][:1]))
    with pytest.raises(UserError, match=r"1 scales and \d+ offsets for \d+ bands; delete that staging folder"):
        build(out)


def test_wide_metadata_arrays_are_chunked_by_bytes(tmp_path: Path) -> None:
    """EnMAP's scale is 224 bands x 4 seasons of float64 a sample: 65,536 samples a chunk would be 470 MB."""
    from export.columns import Column
    from export.store import META_CHUNK_BYTES, _write_column

    store = zarr.storage.LocalStore(tmp_path / "s.zarr")
    data = np.random.default_rng(0).random((3000, 4, 224))
    _write_column(store, "g/scale", Column(("sample", "time", "band"), data, {}))
    arr = zarr.open_array(store, path="g/scale", mode="r")
    assert arr.chunks == (META_CHUNK_BYTES // (4 * 224 * 8), 4, 224)
    np.testing.assert_array_equal(arr[...], data)
    _write_column(store, "g/lon", Column(("sample",), data[:, 0, 0], {}))
    assert zarr.open_array(store, path="g/lon", mode="r").chunks == (3000,)
