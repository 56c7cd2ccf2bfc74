"""Sampler behaviour: offsets follow sigma in metres, city choice, extension, filters, UTM latitude limits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from sampling import SamplerOptions, SamplingError, read_locations, sample_locations, write_locations
from sampling.candidates import CandidateStream, seed_words
from sampling.filters import water_fraction
from sampling.geometry import utm_zone
from tests.sampling._checks import GEOD, cities, overlap_areas


def _phi(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def _ks(sample: np.ndarray, cdf) -> float:  # type: ignore[no-untyped-def]
    x = np.sort(sample)
    f = cdf(x)
    i = np.arange(1, len(x) + 1)
    return float(max(np.max(i / len(x) - f), np.max(f - (i - 1) / len(x))))


@pytest.mark.parametrize("lat", [0.0, 45.0, 70.0, -60.0])
def test_offsets_are_gaussian_in_metres(lat: float) -> None:
    """East and north offsets, measured back along the geodesic, are N(0, sigma^2) in metres at any latitude
    (a degree-based offset without cos(latitude) would stretch east-west offsets by 1/cos(lat))."""
    sigma, n = 30_000.0, 20_000
    stream = CandidateStream(np.array([10.0]), np.array([lat]), sigma, seed_words(3, 0))
    c = stream.take(0, n)
    az, _, d = GEOD.inv(np.full(n, 10.0), np.full(n, lat), c.lon, c.lat)
    dx, dy = d * np.sin(np.radians(az)), d * np.cos(np.radians(az))
    crit = 1.63 / math.sqrt(n)  # KS, alpha = 0.01
    for comp in (dx, dy):
        assert abs(comp.mean()) < 4 * sigma / math.sqrt(n)
        assert abs(comp.std() / sigma - 1.0) < 0.03
        assert _ks(comp / sigma, _phi) < crit
    assert np.allclose(d, c.dist_m, rtol=1e-9, atol=1e-6)


def test_accepted_distances_follow_sigma_when_sparse() -> None:
    """With room to spare (few locations per city), accepted distances to the city are Rayleigh(sigma)."""
    rng = np.random.default_rng(0)
    tab = cities(list(zip(rng.uniform(-170, 170, 400), rng.uniform(-60, 70, 400), strict=True)))
    sigma = 50_000.0
    gdf = sample_locations(tab, 3000, 2640.0, sigma, 11)
    d = gdf["dist_m"].to_numpy() / sigma
    assert _ks(d, lambda x: 1.0 - np.exp(-(x**2) / 2.0)) < 1.63 / math.sqrt(len(d))
    lon_c = tab.set_index("city_id").loc[gdf["city_id"], "lon"].to_numpy()
    lat_c = tab.set_index("city_id").loc[gdf["city_id"], "lat"].to_numpy()
    _, _, dd = GEOD.inv(lon_c, lat_c, gdf["lon"].to_numpy(), gdf["lat"].to_numpy())
    assert np.allclose(dd, gdf["dist_m"], rtol=1e-9, atol=1e-6)


def test_city_choice_uniform_and_population() -> None:
    tab = cities([(0.0, 0.0), (90.0, 0.0)], population=[900_000, 100_000])
    n = 20_000
    uni = CandidateStream(tab.lon.to_numpy(), tab.lat.to_numpy(), 1000.0, seed_words(1, 0)).take(0, n)
    pop = CandidateStream(tab.lon.to_numpy(), tab.lat.to_numpy(), 1000.0, seed_words(1, 0),
                          tab.population.to_numpy(float)).take(0, n)
    assert abs((uni.city == 0).mean() - 0.5) < 0.015
    assert abs((pop.city == 0).mean() - 0.9) < 0.01


def test_stream_is_the_same_whatever_the_ranges() -> None:
    s = CandidateStream(np.array([1.0, 50.0]), np.array([2.0, -30.0]), 5000.0, seed_words(-7, 3))
    whole = s.take(0, 10_000)
    parts = [s.take(a, b) for a, b in ((0, 1), (1, 4096), (4096, 5000), (5000, 10_000))]
    assert np.array_equal(whole.lon, np.concatenate([p.lon for p in parts]))
    assert np.array_equal(whole.city, np.concatenate([p.city for p in parts]))
    other = CandidateStream(np.array([1.0, 50.0]), np.array([2.0, -30.0]), 5000.0, seed_words(7, 3))
    assert not np.array_equal(whole.lon[:100], other.take(0, 100).lon)


TAB = cities([(11.58, 48.14), (-0.13, 51.51), (18.96, 69.65)])


def test_extension_keeps_rows_and_equals_a_single_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    small = sample_locations(TAB, 60, 2640.0, 6000.0, 5)
    write_locations(small, tmp_path / "a.parquet")
    grown = sample_locations(TAB, 150, 2640.0, 6000.0, 5, existing=read_locations(tmp_path / "a.parquet"))
    assert grown.iloc[:60].reset_index(drop=True).equals(small)
    assert grown["location_id"].tolist() == list(range(150))
    assert overlap_areas(grown, 2640.0) == []
    write_locations(grown, tmp_path / "b.parquet")
    direct = sample_locations(TAB, 150, 2640.0, 6000.0, 5)
    write_locations(direct, tmp_path / "c.parquet")
    assert (tmp_path / "b.parquet").read_bytes() == (tmp_path / "c.parquet").read_bytes()
    same = sample_locations(TAB, 100, 2640.0, 6000.0, 5, existing=grown)  # fewer asked: nothing dropped
    assert same.equals(grown)
    # nothing to add, asked with other settings: the file's state is kept, so a later extension with the
    # original settings still equals a single run
    noop = sample_locations(TAB, 30, 2640.0, 9000.0, 9, existing=read_locations(tmp_path / "a.parquet"))
    assert noop.attrs["ssl4eo_sampler"] == small.attrs["ssl4eo_sampler"]
    write_locations(noop, tmp_path / "d.parquet")
    again = sample_locations(TAB, 150, 2640.0, 6000.0, 5, existing=read_locations(tmp_path / "d.parquet"))
    write_locations(again, tmp_path / "e.parquet")
    assert (tmp_path / "e.parquet").read_bytes() == (tmp_path / "c.parquet").read_bytes()


def test_extension_with_other_settings_avoids_old_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    old = sample_locations(TAB, 50, 2640.0, 5000.0, 1)
    write_locations(old, tmp_path / "a.parquet")
    back = read_locations(tmp_path / "a.parquet")
    back.attrs.clear()  # no sampler state: the side comes from the polygons
    grown = sample_locations(TAB, 120, 7920.0, 15000.0, 2, existing=back)
    assert grown.iloc[:50].reset_index(drop=True).drop(columns="geometry").equals(old.drop(columns="geometry"))
    assert grown["location_id"].is_unique
    sides = np.where(np.arange(len(grown)) < 50, 2640.0, 7920.0)
    assert overlap_areas(grown, sides) == []
    again = sample_locations(TAB, 120, 7920.0, 15000.0, 2, existing=back)
    assert again.equals(grown)


def test_oversampled_count_and_zero() -> None:
    assert len(sample_locations(TAB, 0, 2640.0, 5000.0, 0)) == 0
    empty = sample_locations(TAB, 0, 2640.0, 5000.0, 0)
    assert list(empty.columns) == ["location_id", "lon", "lat", "epsg", "city", "country", "city_id", "dist_m",
                                   "geometry"]
    assert str(empty["epsg"].dtype) == "int32" and str(empty["location_id"].dtype) == "int64"


def test_impossible_density_stops_with_a_clear_message() -> None:
    with pytest.raises(SamplingError) as ei:
        sample_locations(TAB, 500, 2640.0, 300.0, 0, SamplerOptions(max_candidates_per_location=50))
    msg = str(ei.value)
    assert "\n" not in msg and "placed" in msg and "of 500" in msg and "sigma" in msg
    assert 0 < ei.value.placed < 500


@pytest.mark.parametrize("bad", [
    {"n": -1}, {"footprint_m": 0.0}, {"sigma_m": 0.0}, {"sigma_m": -3.0}, {"sigma_m": float("nan")},
    {"seed": 1.5},
])
def test_bad_arguments(bad: dict) -> None:
    args = {"n": 5, "footprint_m": 2640.0, "sigma_m": 1000.0, "seed": 0} | bad
    with pytest.raises(SamplingError) as ei:
        sample_locations(TAB, args["n"], args["footprint_m"], args["sigma_m"], args["seed"])
    assert "\n" not in str(ei.value)


def test_existing_rows_with_bad_coordinates_are_one_clear_line() -> None:
    old = sample_locations(TAB, 5, 2640.0, 6000.0, 5)
    for col, value in (("lon", float("nan")), ("lat", 95.0), ("lat", 86.0), ("lon", 181.0)):
        bad = old.copy()
        bad.loc[2, col] = value
        with pytest.raises(SamplingError, match=r"1 row\(s\) with missing or out-of-range lon/lat \(first: "
                                                r"location_id 2 at .*fix or drop those rows$"):
            sample_locations(TAB, 10, 2640.0, 6000.0, 5, existing=bad)
    with pytest.raises(SamplingError, match="out-of-range lon/lat"):
        sample_locations(cities([(185.0, 10.0)]), 3, 2640.0, 6000.0, 5)


def test_latitudes_beyond_utm_are_rejected() -> None:
    gdf = sample_locations(cities([(30.0, 83.7), (-60.0, -79.7)]), 40, 2640.0, 40_000.0, 3)
    assert gdf["lat"].between(-80.0, 84.0).all()
    assert gdf.attrs["ssl4eo_sampler_stats"]["rejected"]["latitude"] > 0
    assert overlap_areas(gdf, 2640.0) == []


def test_exclude_and_include_areas() -> None:
    box = shapely.box(11.3, 48.0, 11.6, 48.3)  # a "benchmark tile" next to Munich
    gdf = sample_locations(TAB.iloc[:1], 80, 2640.0, 20_000.0, 4, SamplerOptions(exclude=box))
    assert not gdf.geometry.intersects(box).any()
    assert gdf.attrs["ssl4eo_sampler_stats"]["rejected"]["exclude"] > 0
    inc = shapely.box(11.4, 47.9, 12.5, 48.6)
    gdf = sample_locations(TAB.iloc[:1], 40, 2640.0, 20_000.0, 4, SamplerOptions(include=inc))
    assert gdf.geometry.within(inc).all()
    assert gdf.attrs["ssl4eo_sampler_stats"]["rejected"]["include"] > 0


def test_land_filter_with_a_given_mask() -> None:
    def east_is_sea(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        return lon < 11.58

    gdf = sample_locations(TAB.iloc[:1], 50, 2640.0, 20_000.0, 2,
                           SamplerOptions(land_filter=True, land_mask=east_is_sea, max_water_fraction=0.25))
    wf = water_fraction(gdf.lon.to_numpy(), gdf.lat.to_numpy(), utm_zone(gdf.lon.to_numpy()),
                        np.full(len(gdf), 1320.0), east_is_sea)
    assert (wf <= 0.25).all()
    assert (gdf["lon"] < 11.58 + 0.02).all()
    assert gdf.attrs["ssl4eo_sampler_stats"]["rejected"]["water"] > 0


def test_land_filter_with_global_land_mask() -> None:
    pytest.importorskip("global_land_mask")
    lisbon = cities([(-9.14, 38.72)])
    gdf = sample_locations(lisbon, 40, 2640.0, 40_000.0, 8, SamplerOptions(land_filter=True))
    from sampling.filters import load_land_mask

    wf = water_fraction(gdf.lon.to_numpy(), gdf.lat.to_numpy(), utm_zone(gdf.lon.to_numpy()),
                        np.full(len(gdf), 1320.0), load_land_mask())
    assert (wf <= 0.5).all()
    assert gdf.attrs["ssl4eo_sampler_stats"]["rejected"]["water"] > 0


def test_land_filter_without_the_extra_names_it(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sys

    from sampling import MissingExtraError

    monkeypatch.setitem(sys.modules, "global_land_mask", None)
    monkeypatch.setitem(sys.modules, "global_land_mask.globe", None)
    with pytest.raises(MissingExtraError, match=r"ssl4eo-curate\[land\]"):
        sample_locations(TAB, 5, 2640.0, 5000.0, 0, SamplerOptions(land_filter=True))


def test_hot_spot_is_bounded_and_fails_fast() -> None:
    """100,000 locations asked around one city with sigma 2.5 km: the first batch crowds into a few grid
    cells; the in-batch pair budget keeps memory bounded and the give-up rule stops the run quickly."""
    with pytest.raises(SamplingError, match=r"placed \d+ of 100000"):
        sample_locations(cities([(0.0, 0.0)]), 100_000, 2640.0, 2500.0, 0)


def test_give_up_message_names_the_main_reason() -> None:
    far = shapely.box(100.0, 10.0, 101.0, 11.0)  # nowhere near the cities
    with pytest.raises(SamplingError, match="outside the include areas"):
        sample_locations(TAB, 5, 2640.0, 5000.0, 0, SamplerOptions(include=far, max_candidates_per_location=30))
