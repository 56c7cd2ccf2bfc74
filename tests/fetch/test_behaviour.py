"""Fetch behaviour against the served archive, with outcomes predicted from the archive plan and truth function:
fallback past cloudy and nodata candidates, Sentinel-1 time matching, every failure reason (recorded in the ledger
by ``run_fetch`` on a real LocalCluster), resume after a partial run, and bad input (empty search, corrupt COG,
truncated items, failing search).

The prediction (``expect``) re-derives, from ``plan_archive()`` and the truth function alone, which scenes a search
finds, how the pipeline ranks them and how cloudy / nodata each one is on the patch, so every test states what the
pipeline must pick. Cases are chosen with clear margins to the thresholds; when the archive plan changes so much that
a case loses its point, the test says so instead of passing vacuously.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import shutil
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import box

from pipeline import staging
from pipeline.archive import truth
from pipeline.archive.items import footprint_lonlat
from pipeline.archive.plan import Scene, plan_archive
from pipeline.archive.sites import site_by_name
from pipeline.errors import SourceError
from pipeline.fetch.grid import PatchGrid, location_centre, lonlat_boxes, patch_grid, utm_epsg
from pipeline.fetch.location import LocationResult, fetch_location
from pipeline.fetch.read import GdalReader
from pipeline.fetch.request import FetchParams, LocationTask, ProductRequest, product_request
from pipeline.fetch.run import run_fetch
from pipeline.fetch.seasons import location_year, rank, windows
from pipeline.ledger import LEDGER, Reason, read_ledger
from pipeline.sources import SceneRef, SearchQuery, SourceSpec, open_source
from pipeline.warnings import SkippedItemWarning

S2 = product_request("s2_l2a", 64, ("B04", "B08"))
S1 = product_request("s1_grd", 64, None)
SCL_RES = 20.0  # the archive's SCL asset (and Planetary Computer's) is 20 m


def params(url: str, products: tuple[ProductRequest, ...] = (S2,), **kw: Any) -> FetchParams:
    base: dict[str, Any] = dict(
        source=SourceSpec(url), products=products, reference_dates=("03-20", "06-21", "09-22", "12-21"),
        half_width_days=30, years=(2023, 2024), season_seed=0, max_scene_cloud=100.0, max_patch_cloud=0.2,
        max_patch_nodata=0.5, s1_max_days=6.0, max_candidates=5, timeout_s=10.0, retries=1,
    )
    base.update(kw)
    return FetchParams(**base)


def at(site: str, dx: float, dy: float, year: int, first_id: int) -> LocationTask:
    """A location ``dx, dy`` metres east/north of an archive site's centre; its id (from ``first_id`` up) is one
    whose seeded year is ``year`` (the year decides which scenes a season window holds)."""
    s = site_by_name(site)
    lon, lat = Transformer.from_crs(truth.site_crs(s.lon, s.lat), 4326, always_xy=True).transform(dx, dy)
    lid = next(i for i in range(first_id, first_id + 100) if location_year((2023, 2024), 0, i) == year)
    return LocationTask(lid, float(lon), float(lat), utm_epsg(lon, lat))


# --- prediction from the plan and the truth function -----------------------------------------------------------


@dataclass(frozen=True)
class Cand:
    scene: Scene
    cloud: float
    """Predicted cloudy share of the valid patch pixels (as the pipeline computes it from the quality layer)."""
    nodata: float


@dataclass
class Expect:
    reason: Reason | None
    season: int | None = None
    """The season that failed (reason set)."""
    picks: list[Cand] = field(default_factory=list)
    ranked: list[list[Cand]] = field(default_factory=list)
    """Every season's candidates in the pipeline's order (up to the failing season)."""


def grid_of(task: LocationTask, prod: ProductRequest) -> PatchGrid:
    return patch_grid(location_centre(task.lon, task.lat, task.epsg), task.epsg, prod.res, prod.patch_px)


def _local(scene: Scene, epsg: int, ex: np.ndarray, ey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = site_by_name(scene.site)
    x, y = truth.to_site(epsg, s.lon, s.lat).transform(ex, ey)
    return np.asarray(x), np.asarray(y)


def _inside(scene: Scene, ex: np.ndarray, ey: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = scene.bounds
    return (ex > x0) & (ex < x1) & (ey > y0) & (ey < y1)


def patch_quality(scene: Scene, grid: PatchGrid) -> tuple[float, float]:
    """(cloud, nodata) fractions of ``scene`` on ``grid``, exactly as the pipeline sees them: band pixels at the
    patch's 10 m centres (aligned grids: plain windowed reads), the 20 m quality layer by nearest neighbour."""
    assert scene.epsg == grid.epsg, "cases are chosen inside one UTM zone"
    xs, ys = grid.pixel_centres()
    ex, ey = np.meshgrid(np.asarray(xs), np.asarray(ys))
    valid = truth.valid_mask(*_local(scene, grid.epsg, ex, ey), scene.edge) & _inside(scene, ex, ey)
    if scene.product != "s2_l2a":
        return 0.0, float(1.0 - valid.mean())
    # the 20 m SCL pixel under each 10 m pixel (both lattices are multiples of 20 m from the snapped centre)
    qx, qy = np.floor(ex / SCL_RES) * SCL_RES + SCL_RES / 2, np.floor(ey / SCL_RES) * SCL_RES + SCL_RES / 2
    lx, ly = _local(scene, grid.epsg, qx, qy)
    valid &= truth.valid_mask(lx, ly, scene.edge) & _inside(scene, qx, qy)  # SCL 0 (fill) is nodata too
    cloudy = truth.cloud_field(lx, ly, scene.seed) > scene.cloud_threshold
    n = int(valid.sum())
    return (float((cloudy & valid).sum() / n) if n else 0.0), float(1.0 - valid.mean())


@functools.cache
def _footprint(scene: Scene) -> Any:
    return footprint_lonlat(scene)  # the item's geometry


def found(prod: ProductRequest, grid: PatchGrid, start: dt.datetime, end: dt.datetime,
          max_cloud: float | None) -> list[Scene]:
    """What a search finds: the product's scenes in the time range whose footprint meets the patch's lon/lat box."""
    bbox = shapely.union_all([box(*b) for b in lonlat_boxes(grid)])
    return [s for s in plan_archive() if s.product == prod.name and start <= s.datetime <= end
            and (max_cloud is None or s.cloud_cover <= max_cloud) and _footprint(s).intersects(bbox)]


def ranked_cands(scenes: list[Scene], grid: PatchGrid, order: list[SceneRef]) -> list[Cand]:
    by_id = {s.item_id: s for s in scenes}
    return [Cand(by_id[r.id], *patch_quality(by_id[r.id], grid)) for r in order]


def _refs(scenes: list[Scene]) -> list[SceneRef]:
    return [SceneRef(s.item_id, s.collection, s.datetime, None if s.product == "s1_grd" else s.cloud_cover,
                     s.epsg, ()) for s in scenes]


def _judge(cands: list[Cand], p: FetchParams, sar: bool) -> tuple[Cand | None, Reason | None]:
    """The pipeline's acceptance rule, with a margin check so predictions never sit on a threshold."""
    rejected: Counter[Reason] = Counter()
    for c in cands[: p.max_candidates]:
        assert abs(c.nodata - p.max_patch_nodata) > 0.03, f"case too close to the nodata threshold: {c}"
        if c.nodata > p.max_patch_nodata:
            rejected[Reason.NODATA] += 1
            continue
        if not sar:
            assert abs(c.cloud - p.max_patch_cloud) > 0.03, f"case too close to the cloud threshold: {c}"
            if c.cloud > p.max_patch_cloud:
                rejected[Reason.TOO_CLOUDY] += 1
                continue
        return c, None
    return None, rejected.most_common(1)[0][0]


def expect(task: LocationTask, p: FetchParams) -> Expect:
    """What ``fetch_location(task, p, ...)`` must do, with products (S2,) or (S2, S1)."""
    year = location_year(p.years, p.season_seed, task.location_id)
    out = Expect(None)
    for w in windows(p.reference_dates, p.half_width_days, year):
        for prod in p.products:
            grid = grid_of(task, prod)
            if prod.is_sar:
                t = out.picks[-1].scene.datetime
                lim = dt.timedelta(days=p.s1_max_days)
                scenes = found(prod, grid, t - lim, t + lim, None)
                order = sorted(_refs(scenes), key=lambda r: (abs((r.datetime - t).total_seconds()), r.id))
                if not order:
                    return Expect(Reason.NO_S1_MATCH, w.season, out.picks, out.ranked)
            else:
                scenes = found(prod, grid, w.start, w.end, p.max_scene_cloud)
                order = rank(_refs(scenes), w.reference)
                if not order:
                    return Expect(Reason.NO_CANDIDATE, w.season, out.picks, out.ranked)
            cands = ranked_cands(scenes, grid, order)
            out.ranked.append(cands)
            pick, reason = _judge(cands, p, prod.is_sar)
            if pick is None:
                return Expect(reason, w.season, out.picks, out.ranked)
            out.picks.append(pick)
    return out


# --- fixtures ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(8) as p:
        yield p


@pytest.fixture(params=["geoparquet", pytest.param("stac-api", marks=pytest.mark.pgstac)])
def any_source(request: pytest.FixtureRequest) -> str:
    """The served archive through stac-geoparquet and through the STAC API (stac-fastapi-pgstac)."""
    if request.param == "geoparquet":
        return str(request.getfixturevalue("served_geoparquet").geoparquet)
    return str(request.getfixturevalue("served_pgstac").stac_url)


def fetch(task: LocationTask, p: FetchParams, pool: ThreadPoolExecutor) -> LocationResult:
    return fetch_location(task, p, open_source(p.source), GdalReader(timeout_s=10.0, retries=1), pool)


def picked(r: LocationResult, product: str = "s2_l2a") -> list[str]:
    assert r.meta is not None
    return [s.scene_id for s in r.meta.products[product].seasons]


# --- happy paths on the served archive ---------------------------------------------------------------------------


MUNICH_CENTRE = ("Munich", 0.0, 0.0, 2024)
"""2024 at Munich's centre: complete, with one season whose least cloudy scene is cloudy over the patch."""
SAO_PAULO_NW = ("Sao Paulo", -1000.0, 1000.0, 2023)
"""2023 north-west of Sao Paulo's centre: in two seasons the least cloudy scene is cloudy over the patch, in another
the first scene's swath edge leaves the patch mostly without data; all must fall back to the next candidate."""
TROMSO = ("Tromso", 0.0, 0.0, 2023)
"""69.6 N; every season has an S1 pass within 6 days of the optical pick."""


def test_cloudy_and_nodata_first_candidates_fall_back_to_the_next(served_geoparquet, pool) -> None:
    task = at(*SAO_PAULO_NW, first_id=1)
    strict = params(str(served_geoparquet.geoparquet), max_patch_cloud=0.2)
    want = expect(task, strict)
    assert want.reason is None
    idx = [cands.index(pk) for cands, pk in zip(want.ranked, want.picks, strict=True)]
    cloudy_fallback = [k for k, i in enumerate(idx) if i > 0 and want.ranked[k][0].cloud > 0.2
                       and want.ranked[k][0].nodata < 0.5]
    nodata_fallback = [k for k, i in enumerate(idx) if i > 0 and want.ranked[k][0].nodata > 0.5]
    assert cloudy_fallback and nodata_fallback, f"plan changed: no fallback left in this case ({want.ranked})"

    r = fetch(task, strict, pool)
    assert r.ok, f"{r.reason}: {r.detail}"
    assert picked(r) == [c.scene.item_id for c in want.picks]
    assert r.meta is not None and r.arrays is not None
    for pick, c in zip(r.meta.products["s2_l2a"].seasons, want.picks, strict=True):
        assert pick.cloud_fraction <= 0.2 and pick.nodata_fraction <= 0.5
        assert pick.cloud_fraction == pytest.approx(c.cloud, abs=0.005)
        assert pick.nodata_fraction == pytest.approx(c.nodata, abs=0.005)
    assert r.arrays["s2_l2a"].shape == (4, 2, 64, 64) and r.arrays["s2_l2a"].dtype == np.uint16
    assert r.reads == 3 * sum(i + 1 for i in idx)  # B04, B08, SCL per candidate tried, nothing more

    # without the patch cloud limit the least cloudy scene of the window is taken, however cloudy the patch
    loose = params(str(served_geoparquet.geoparquet), max_patch_cloud=1.0)
    r2 = fetch(task, loose, pool)
    assert r2.ok and r2.meta is not None
    k = cloudy_fallback[0]
    assert picked(r2)[k] == want.ranked[k][0].scene.item_id
    assert r2.meta.products["s2_l2a"].seasons[k].cloud_fraction > 0.2


def test_s1_matched_to_the_optical_pick(any_source: str, pool) -> None:
    task = at(*TROMSO, first_id=1)
    p = params(any_source, (S2, S1))
    want = expect(task, p)
    assert want.reason is None, want
    r = fetch(task, p, pool)
    assert r.ok, f"{r.reason}: {r.detail}"
    assert r.meta is not None and r.arrays is not None
    s2 = r.meta.products["s2_l2a"].seasons
    s1 = r.meta.products["s1_grd"].seasons
    assert [x.scene_id for x in s2] == [c.scene.item_id for c in want.picks[0::2]]
    assert [x.scene_id for x in s1] == [c.scene.item_id for c in want.picks[1::2]]
    for a, b in zip(s2, s1, strict=True):
        gap = abs(dt.datetime.fromisoformat(a.datetime) - dt.datetime.fromisoformat(b.datetime))
        assert gap <= dt.timedelta(days=p.s1_max_days), (a, b)
    assert r.arrays["s1_grd"].shape == (4, 2, 64, 64) and r.arrays["s1_grd"].dtype == np.float32
    assert np.isfinite(r.arrays["s1_grd"]).mean() > 0.5
    # what turns the stored values into physical ones travels with every pick: S2 as its items publish it
    # (raster:bands, baseline >= 04.00: -1000 DN), S1 already in dB
    for x in s2:
        assert x.scale == (1e-4, 1e-4) and x.offset == pytest.approx((-truth.S2_OFFSET_DN * 1e-4,) * 2)
    for x in s1:
        assert x.scale == (1.0, 1.0) and x.offset == (0.0, 0.0)


def test_no_s1_match_when_nothing_is_close_enough(served_geoparquet, pool) -> None:
    task = at(*TROMSO, first_id=1)
    p = params(str(served_geoparquet.geoparquet), (S2, S1), s1_max_days=0.05)  # S1 passes hours after S2
    want = expect(task, p)
    assert want.reason is Reason.NO_S1_MATCH and want.season == 0
    r = fetch(task, p, pool)
    assert r.reason is Reason.NO_S1_MATCH and r.meta is None and r.arrays is None
    anchor = want.picks[0].scene.datetime
    assert r.detail == f"s1_grd season 0: no scene within 0.05 days of {anchor:%Y-%m-%d}"


def test_empty_search_is_no_candidate(any_source: str, pool) -> None:
    task = LocationTask(3, -150.0, 5.0, utm_epsg(-150.0, 5.0))  # mid-Pacific: no archive scene anywhere near
    p = params(any_source)
    r = fetch(task, p, pool)
    w = windows(p.reference_dates, p.half_width_days, location_year(p.years, p.season_seed, 3))[0]
    assert r.reason is Reason.NO_CANDIDATE and r.reads == 0
    assert r.detail == f"s2_l2a season 0: no scene in {w.start:%Y-%m-%d}..{w.end:%Y-%m-%d} under 100% cloud"


# --- bad input ------------------------------------------------------------------------------------------------


class FailingSource:
    def search(self, q: SearchQuery) -> list[SceneRef]:
        raise SourceError(f"STAC API 'http://127.0.0.1:9' rejected a search of {q.collection!r}: 502 Bad Gateway")


def test_search_failure_is_a_source_error() -> None:
    task = at(*MUNICH_CENTRE, first_id=1)
    r = fetch_location(task, params("unused.parquet"), FailingSource(), GdalReader())
    assert r.reason is Reason.SOURCE_ERROR and r.reads == 0
    assert r.detail.startswith("s2_l2a season 0: search failed: STAC API") and "502" in r.detail


def _served_items(ep: Any, collection: str = "sentinel-2-l2a") -> list[dict[str, Any]]:
    feats = json.loads(Path(ep.item_collection).read_text())["features"]
    return [f for f in feats if f["collection"] == collection]


@pytest.mark.parametrize("form", ["ndjson-truncated-line", "json-truncated-item"])
def test_truncated_item_is_skipped_and_the_rest_searched(served_geoparquet, pool, tmp_path: Path,
                                                         form: str) -> None:
    task = at(*MUNICH_CENTRE, first_id=1)
    p0 = params("unused")
    want = expect(task, p0)
    assert want.reason is None
    # the pick of a season with another acceptable candidate: that one must replace it
    k, fallback = next((k, pk) for k, cands in enumerate(want.ranked)
                       if (pk := _judge([c for c in cands if c != want.picks[k]], p0, sar=False)[0]) is not None)
    victim = want.picks[k].scene.item_id
    items = _served_items(served_geoparquet)
    if form.startswith("ndjson"):
        path = tmp_path / "items.ndjson"
        lines = [json.dumps(f) for f in items]
        n = next(i for i, f in enumerate(items) if f["id"] == victim)
        lines[n] = lines[n][: len(lines[n]) // 2]  # a writer killed mid-line
        path.write_text("\n".join(lines) + "\n")
        with pytest.warns(SkippedItemWarning, match=rf"skipped line {n + 1} of .*items.ndjson"):
            source = open_source(SourceSpec(str(path)))
    else:
        path = tmp_path / "items.json"
        for f in items:
            if f["id"] == victim:  # cut after its properties: no stac_version, assets, links
                for key in ("stac_version", "stac_extensions", "assets", "links"):
                    f.pop(key, None)
        path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
        source = open_source(SourceSpec(str(path)))
    p = params(str(path))
    with pytest.warns(SkippedItemWarning) if form.startswith("json") else contextlib.nullcontext():
        r = fetch_location(task, p, source, GdalReader(timeout_s=10.0, retries=1), pool)
    assert r.ok, f"{r.reason}: {r.detail}"
    assert picked(r) == [(fallback if i == k else c).scene.item_id for i, c in enumerate(want.picks)]


def test_scenes_without_the_products_assets_are_no_candidates(served_geoparquet, pool, tmp_path: Path) -> None:
    """A catalog that mixes scenes the product cannot use (Sentinel-1 EW or HH+HV beside IW VV+VH): such a scene
    is passed over like one that was never found, not tried and counted a source error; when no scene has the
    assets, the reason says which were missing."""
    task = at(*MUNICH_CENTRE, first_id=1)
    p0 = params("unused")
    want = expect(task, p0)
    k, fallback = next((k, pk) for k, cands in enumerate(want.ranked)
                       if (pk := _judge([c for c in cands if c != want.picks[k]], p0, sar=False)[0]) is not None)
    items = _served_items(served_geoparquet)
    for f in items:
        if f["id"] == want.picks[k].scene.item_id:
            del f["assets"]["B08"]
    path = tmp_path / "items.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    r = fetch(task, params(str(path)), pool)
    assert r.ok, f"{r.reason}: {r.detail}"
    assert picked(r) == [(fallback if i == k else c).scene.item_id for i, c in enumerate(want.picks)]
    for f in items:
        f["assets"].pop("B08", None)
    path = tmp_path / "items-without-b08.json"  # another file: open_source caches a source per process
    path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    r = fetch(task, params(str(path)), pool)
    assert r.reason is Reason.NO_CANDIDATE and r.reads == 0
    assert "none with asset(s) ['B04', 'B08', 'SCL']" in r.detail, r.detail


def test_a_collection_under_another_name(served_geoparquet, pool, tmp_path: Path) -> None:
    """products[].collection: the same data under another catalog's collection id."""
    task = at(*MUNICH_CENTRE, first_id=1)
    want = expect(task, params("unused"))
    items = _served_items(served_geoparquet)
    for f in items:
        f["collection"] = "landsatlook-style-s2"
    path = tmp_path / "renamed.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    renamed = product_request("s2_l2a", 64, ("B04", "B08"), collection="landsatlook-style-s2")
    r = fetch(task, params(str(path), products=(renamed,)), pool)
    assert r.ok and picked(r) == [c.scene.item_id for c in want.picks]
    assert fetch(task, params(str(path)), pool).reason is Reason.NO_CANDIDATE  # the default id finds nothing


# --- run_fetch on a LocalCluster: every reason in the ledger, corrupt COGs, resume ---------------------------------


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
                      dashboard_address=None, memory_limit="2GiB") as cluster, Client(cluster) as c:
        yield c


def _cog(archive_root: Path, scene: Scene, key: str) -> Path:
    return archive_root / "cogs" / scene.collection / scene.item_id / f"{key}.tif"


def _ledger_lines(out: Path) -> Counter[int]:
    n: Counter[int] = Counter()
    for line in (out / LEDGER).read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            n[json.loads(line)["location_id"]] += 1
    return n


def test_run_fetch_reasons_ledger_corrupt_cogs_and_resume(archive_root: Path, served_geoparquet, client,
                                                         tmp_path: Path) -> None:
    probe = params("unused")
    case = {  # name -> (task, what the plan says must happen)
        "fallback": at(*MUNICH_CENTRE, first_id=1),
        "empty": LocationTask(900, -150.0, 5.0, utm_epsg(-150.0, 5.0)),
        "cloudy": at("Munich", 0.0, 1000.0, 2023, first_id=200),
        "corrupt": at("Nairobi", 0.0, 0.0, 2024, first_id=300),
        "nodata": at("Nairobi", -3000.0, 0.0, 2024, first_id=400),
        "broken": at("Sao Paulo", 0.0, 0.0, 2024, first_id=500),
    }
    want = {name: expect(t, probe) for name, t in case.items() if name != "empty"}
    assert want["fallback"].reason is None
    assert want["cloudy"].reason is Reason.TOO_CLOUDY
    assert want["nodata"].reason is Reason.NODATA
    assert want["corrupt"].reason is None and want["broken"].reason is None
    lid = {name: t.location_id for name, t in case.items()}
    assert len(set(lid.values())) == len(lid)

    # the index: the served S2 L2A items; some assets swapped for local copies with a truncated B04
    corrupt_first = want["corrupt"].ranked[0][0].scene  # season 0's first choice at "corrupt": the next one is used
    corrupt_next, _ = _judge(want["corrupt"].ranked[0][1:], probe, sar=False)
    assert want["corrupt"].picks[0].scene == corrupt_first and corrupt_next is not None
    broken = [c.scene for c in want["broken"].ranked[0]]  # every season-0 candidate at "broken" -> source_error
    items = _served_items(served_geoparquet)
    local: dict[Path, Path] = {}
    for scene in [corrupt_first, *broken]:
        item = next(f for f in items if f["id"] == scene.item_id)
        for key in ("B04", "B08", "SCL"):
            dst = tmp_path / "cogs" / scene.item_id / f"{key}.tif"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_cog(archive_root, scene, key), dst)
            item["assets"][key]["href"] = str(dst)
            if key == "B04":
                local[dst] = _cog(archive_root, scene, key)
                with open(dst, "r+b") as f:  # overviews come first in a COG: a quarter holds no full-res tile
                    f.truncate(dst.stat().st_size // 4)
    index = tmp_path / "items.json"
    index.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    p = params(str(index))
    out = tmp_path / "out"
    tasks = list(case.values())

    # run 1: a subset
    s = run_fetch(client, [case["fallback"], case["empty"], case["cloudy"]], p, out, result_timeout_s=120)
    assert (s.complete, dict(s.failed)) == (1, {"no_candidate": 1, "too_cloudy": 1})

    # a killed run: a half-written staging folder and a torn last ledger line
    tmp = out / staging.STAGING_DIR / f".tmp-{lid['nodata']:07d}-deadbeef"
    tmp.mkdir(parents=True)
    (tmp / "s2_l2a.npy").write_bytes(b"\x93NUMPY")
    with open(out / LEDGER, "a") as f:
        f.write(f'{{"location_id": {lid["nodata"]}, "status": "comp')

    # run 2: everything; only what is left is attempted
    s = run_fetch(client, tasks, p, out, result_timeout_s=120)
    assert (s.total, s.skipped_complete, s.skipped_failed) == (6, 1, 2)
    assert (s.complete, dict(s.failed)) == (1, {"nodata": 1, "source_error": 1})
    assert not tmp.exists()
    ledger = read_ledger(out)
    assert set(ledger) == set(lid.values()), "an outcome is missing from the ledger"
    assert _ledger_lines(out) == Counter(lid.values())  # each location attempted exactly once so far
    reasons = {name: ledger[i].reason for name, i in lid.items()}
    assert reasons == {"fallback": None, "empty": "no_candidate", "cloudy": "too_cloudy", "corrupt": None,
                       "nodata": "nodata", "broken": "source_error"}
    w0 = windows(p.reference_dates, p.half_width_days, location_year(p.years, p.season_seed, lid["empty"]))[0]
    assert ledger[lid["empty"]].detail == (f"s2_l2a season 0: no scene in {w0.start:%Y-%m-%d}..{w0.end:%Y-%m-%d}"
                                           " under 100% cloud")
    k = want["cloudy"].season
    n = min(len(want["cloudy"].ranked[k]), p.max_candidates)
    assert ledger[lid["cloudy"]].detail.startswith(f"s2_l2a season {k}: {n} candidate(s) rejected: "
                                                   f"{want['cloudy'].ranked[k][0].scene.item_id}: cloud ")
    k = want["nodata"].season
    assert ledger[lid["nodata"]].detail.startswith(f"s2_l2a season {k}: ")
    assert f"{want['nodata'].ranked[k][0].scene.item_id}: nodata " in ledger[lid["nodata"]].detail
    d = ledger[lid["broken"]].detail
    assert d.startswith(f"s2_l2a season 0: {len(broken)} candidate(s) rejected: {broken[0].item_id}: ")
    assert "B04.tif" in d and "IReadBlock failed" in d, d  # the asset and GDAL's own words, however long the href

    # the corrupt first choice was rejected, the next candidate taken; complete locations are exact
    expected_picks = {
        "fallback": [c.scene.item_id for c in want["fallback"].picks],
        "corrupt": [corrupt_next.scene.item_id] + [c.scene.item_id for c in want["corrupt"].picks[1:]],
    }
    for name, ids in expected_picks.items():
        folder = staging.location_dir(out, lid[name])
        meta = staging.read_meta(folder)
        assert [x.scene_id for x in meta.products["s2_l2a"].seasons] == ids
        arr = staging.read_array(folder, "s2_l2a")
        assert arr.shape == (4, 2, 64, 64) and arr.dtype == np.uint16
        assert meta.products["s2_l2a"].transform == grid_of(case[name], S2).transform
    assert corrupt_first.item_id not in expected_picks["corrupt"]

    # run 3: data failures are not retried, the source error is
    s = run_fetch(client, tasks, p, out, result_timeout_s=120)
    assert (s.skipped_complete, s.skipped_failed, s.complete, dict(s.failed)) == (2, 3, 0, {"source_error": 1})

    # run 4: the COGs are repaired; the retried location completes with its first choice
    for dst, src in local.items():
        shutil.copyfile(src, dst)
    s = run_fetch(client, tasks, p, out, result_timeout_s=120)
    assert (s.skipped_complete, s.skipped_failed, s.complete, dict(s.failed)) == (2, 3, 1, {})
    ledger = read_ledger(out)
    assert ledger[lid["broken"]].status == "complete" and ledger[lid["broken"]].attempt == 3
    assert _ledger_lines(out) == Counter(lid.values()) + Counter({lid["broken"]: 2})
    meta = staging.read_meta(staging.location_dir(out, lid["broken"]))
    assert [x.scene_id for x in meta.products["s2_l2a"].seasons] == [c.scene.item_id for c in want["broken"].picks]
    assert staging.complete_ids(out) == {lid["fallback"], lid["corrupt"], lid["broken"]}


def test_run_fetch_is_not_answered_by_an_earlier_runs_task(archive_root: Path, served_geoparquet, client,
                                                           tmp_path: Path) -> None:
    """A key the scheduler still holds (an earlier run's task, released asynchronously) must not answer this run."""
    from pipeline.fetch.run import TaskOutcome

    task = at(*MUNICH_CENTRE, first_id=1)
    stale = client.submit(lambda: TaskOutcome(task.location_id, "source_error", "an earlier run", 0, 0, 0.0),
                          key=f"fetch-{task.location_id}", pure=False)
    stale.result(timeout=60)
    s = run_fetch(client, [task], params(str(served_geoparquet.geoparquet)), tmp_path / "out", result_timeout_s=120)
    assert (s.complete, dict(s.failed)) == (1, {})
    assert staging.complete_ids(tmp_path / "out") == {task.location_id}
    stale.release()


def test_a_location_task_never_raises(served_geoparquet, tmp_path: Path) -> None:
    """What goes wrong in a worker task (the source cannot be opened, staging cannot be written) becomes the
    location's reason, retried on the next run, instead of an exception that would end the run."""
    from pipeline.fetch.run import fetch_and_stage
    from pipeline.ledger import RETRYABLE

    task = at(*MUNICH_CENTRE, first_id=1)
    o = fetch_and_stage(task, params("ftp://nowhere/catalog"), str(tmp_path / "a"), io_threads=2)
    assert (o.location_id, o.reason) == (task.location_id, "source_error")
    assert "SourceError" in o.detail and "ftp://nowhere/catalog" in o.detail
    out = tmp_path / "b"
    out.mkdir()
    (out / staging.STAGING_DIR).write_text("not a folder")  # staging cannot be created: as a full disk would fail
    o = fetch_and_stage(task, params(str(served_geoparquet.geoparquet)), str(out), io_threads=2)
    assert o.reason == Reason.WORKER_ERROR.value and o.detail.startswith("staging write: "), o
    assert o.reads > 0 and o.nbytes == 0
    assert {Reason(o.reason), Reason.SOURCE_ERROR} <= RETRYABLE
