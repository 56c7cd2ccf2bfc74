"""locations.parquet round trip and bytes, geometry, plots, and the ``ssl4eo sample`` command."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely
from pyproj import Transformer

from pipeline.cli import main as cli
from pipeline.fetch.grid import utm_epsg as site_epsg  # the zone the download stage uses
from sampling import read_locations, sample_locations, write_locations, write_plots
from sampling.geometry import from_utm, lonlat_rings, to_utm, utm_epsg, utm_zone
from tests.sampling._checks import cities

TAB = cities([(179.99, -17.7), (6.0, 45.0), (-46.6, -23.5)])


def test_parquet_round_trip_is_exact_and_deterministic(tmp_path) -> None:  # type: ignore[no-untyped-def]
    gdf = sample_locations(TAB, 120, 2640.0, 8000.0, 9)
    p1, p2 = write_locations(gdf, tmp_path / "a.parquet"), write_locations(gdf, tmp_path / "b.parquet")
    assert p1.read_bytes() == p2.read_bytes()
    back = read_locations(p1)
    assert list(back.columns) == list(gdf.columns)
    assert back.drop(columns="geometry").equals(gdf.drop(columns="geometry"))
    assert back.geometry.geom_equals_exact(gdf.geometry, tolerance=0).all()
    assert back.crs.to_epsg() == 4326
    assert {str(back[c].dtype) for c in ("lon", "lat", "dist_m")} == {"float64"}
    assert str(back["epsg"].dtype) == "int32" and str(back["location_id"].dtype) == "int64"
    meta = pq.read_schema(p1).metadata
    geo = json.loads(meta[b"geo"])
    assert geo["primary_column"] == "geometry" and geo["columns"]["geometry"]["encoding"] == "WKB"
    assert back.attrs["ssl4eo_sampler"]["next_candidate"] == gdf.attrs["ssl4eo_sampler"]["next_candidate"]
    assert len(gpd.read_parquet(p1)) == 120  # plain geopandas reads it too


def test_geometry_is_the_utm_square() -> None:
    gdf = sample_locations(TAB, 60, 7920.0, 25_000.0, 2)
    assert gdf.geometry.is_valid.all()
    multi = gdf[gdf.geometry.geom_type == "MultiPolygon"]
    assert len(multi) > 0  # footprints across the antimeridian are split there
    assert all(np.abs(shapely.get_coordinates(g)[:, 0]).max() <= 180.0 for g in multi.geometry)
    for row in gdf.itertuples():
        tr = Transformer.from_crs(4326, int(row.epsg), always_xy=True)
        xy = shapely.get_coordinates(row.geometry)
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        cx, cy = tr.transform(row.lon, row.lat)
        tol = 0.01 if row.geometry.geom_type == "Polygon" else 0.5  # antimeridian cuts lie on chords
        assert np.maximum(np.abs(x - cx), np.abs(y - cy)) == pytest.approx(3960.0, abs=tol)
    assert (gdf["epsg"].to_numpy() == utm_epsg(gdf.lon.to_numpy(), gdf.lat.to_numpy())).all()


def test_utm_helpers_match_proj_and_the_archive() -> None:
    rng = np.random.default_rng(4)
    lon, lat = rng.uniform(-180, 180, 3000), rng.uniform(-80, 84, 3000)
    epsg = utm_epsg(lon, lat)
    assert all(int(e) == site_epsg(float(a), float(b)) for a, b, e in zip(lon[:300], lat[:300], epsg[:300],
                                                                            strict=True))
    e, n = to_utm(lon, lat, utm_zone(lon))
    for code in np.unique(epsg)[:20]:
        m = epsg == code
        x, y = Transformer.from_crs(4326, int(code), always_xy=True).transform(lon[m], lat[m])
        y = np.where(code > 32700, y - 10_000_000.0, y)
        assert np.abs(x - e[m]).max() < 1e-6 and np.abs(y - n[m]).max() < 1e-6
    lo, la = from_utm(e, n, utm_zone(lon))
    assert np.abs(lo - lon).max() < 1e-9 and np.abs(la - lat).max() < 1e-9
    rings = lonlat_rings(lon[:200], lat[:200], utm_zone(lon[:200]), np.full(200, 3960.0), 8)
    exact = lonlat_rings(lon[:200], lat[:200], utm_zone(lon[:200]), np.full(200, 3960.0), 2)
    assert np.allclose(rings[:, ::4], exact, atol=1e-9)  # corners and midpoints are exact


def test_plots_are_written(tmp_path) -> None:  # type: ignore[no-untyped-def]
    gdf = sample_locations(TAB, 50, 2640.0, 8000.0, 1)
    m, h = write_plots(gdf, tmp_path, 8000.0)
    for p in (m, h):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def _cfg(tmp_path, **sampling) -> str:  # type: ignore[no-untyped-def]
    lines = ["sampling:"] + [f"  {k}: {v}" for k, v in sampling.items()]
    p = tmp_path / "cfg.yaml"
    p.write_text("\n".join(lines) + "\n")
    return str(p)


def test_cli_sample_writes_and_extends(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    assert cli(["sample", "--config", _cfg(tmp_path, n_locations=20), "--out", str(out)]) == 0
    first = read_locations(out / "locations.parquet")
    assert len(first) == 20 and (out / "locations_map.png").is_file() and (out / "locations_distance.png").is_file()
    assert "placed 20 new" in capsys.readouterr().out
    assert cli(["sample", "--config", _cfg(tmp_path, n_locations=30, oversample=1.5), "--out", str(out)]) == 0
    grown = read_locations(out / "locations.parquet")
    assert len(grown) == 45 and grown.iloc[:20].drop(columns="geometry").equals(first.drop(columns="geometry"))
    assert "kept 20 existing" in capsys.readouterr().out


@pytest.mark.parametrize(("sampling", "needle"), [
    ({"sigma_m": 0}, "sampling.sigma_m"),
    ({"sigma_m": -5}, "sampling.sigma_m"),
    ({"n_locations": -3}, "sampling.n_locations"),
    ({"include": "/nonexistent/areas.geojson"}, "/nonexistent/areas.geojson"),
    ({"exclude": "/nonexistent/t.parquet"}, "/nonexistent/t.parquet"),
    ({"n_locations": 2000, "sigma_m": 300, "max_candidates_per_location": 40}, "sampling.n_locations"),
    ({"min_population": 10**9}, "sampling.min_population"),
])
def test_cli_bad_inputs_give_one_line(tmp_path, capsys, sampling, needle) -> None:  # type: ignore[no-untyped-def]
    rc = cli(["sample", "--config", _cfg(tmp_path, **sampling), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("error: ") and "\n" not in err and needle in err
    assert not (tmp_path / "out" / "locations.parquet").exists()


def test_cli_bad_area_file(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "areas.geojson"
    bad.write_text("{not json")
    rc = cli(["sample", "--config", _cfg(tmp_path, exclude=str(bad)), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and str(bad) in err


def test_cli_exclude_geojson(tmp_path) -> None:  # type: ignore[no-untyped-def]
    area = tmp_path / "test_tiles.geojson"
    tile = shapely.box(11.50, 48.10, 11.65, 48.20)
    gpd.GeoDataFrame(geometry=[tile], crs=4326).to_file(area, driver="GeoJSON")
    out = tmp_path / "out"
    assert cli(["sample", "--config", _cfg(tmp_path, n_locations=40, exclude=str(area)), "--out", str(out)]) == 0
    assert not read_locations(out / "locations.parquet").geometry.intersects(tile).any()
