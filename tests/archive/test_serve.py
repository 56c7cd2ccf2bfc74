"""The archive servers: COG range server, stac-geoparquet / ItemCollection indexes, stac-fastapi-pgstac.

Every test serves its own tiny archive (a few 256x256 COGs written by rasterio, pystac items) built here, so the
tests do not depend on the archive builder. The pgstac tests start a real PostgreSQL + PostGIS.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pystac
import pytest
import rasterio
import requests
import stac_geoparquet.arrow
from affine import Affine
from rasterio.windows import Window

from pipeline.archive.serve import Endpoints, serve_archive
from pipeline.errors import ArchiveError

S2, LANDSAT, S1 = "sentinel-2-l2a", "landsat-c2-l2", "sentinel-1-grd"
COLLECTIONS = (S2, LANDSAT, S1)
MUNICH = (11.4, 48.0, 11.8, 48.3)
NAIROBI = (36.7, -1.4, 37.0, -1.1)


@dataclass(frozen=True)
class Scene:
    id: str
    collection: str
    bbox: tuple[float, float, float, float]
    when: datetime
    cloud: float | None  # None: the item has no eo:cloud_cover (SAR)
    asset: str  # relative path of its one COG


SCENES = (
    Scene("S2A_20230610_MUNICH", S2, MUNICH, datetime(2023, 6, 10, 10, 20, tzinfo=UTC), 10.0,
          "cogs/sentinel-2-l2a/S2A_20230610_MUNICH/B04.tif"),
    Scene("S2B_20230615_MUNICH", S2, MUNICH, datetime(2023, 6, 15, 10, 20, tzinfo=UTC), 49.5,
          "cogs/sentinel-2-l2a/S2B_20230615_MUNICH/quick look.tif"),
    Scene("S2A_20230620_MUNICH_CLOUDY", S2, MUNICH, datetime(2023, 6, 20, 10, 20, tzinfo=UTC), 80.0,
          "cogs/sentinel-2-l2a/S2A_20230620_MUNICH_CLOUDY/B04.tif"),
    Scene("S2A_20220612_MUNICH_LASTYEAR", S2, MUNICH, datetime(2022, 6, 12, 10, 20, tzinfo=UTC), 5.0,
          "cogs/sentinel-2-l2a/S2A_20220612_MUNICH_LASTYEAR/B04.tif"),
    Scene("S2A_20230612_NAIROBI", S2, NAIROBI, datetime(2023, 6, 12, 7, 40, tzinfo=UTC), 3.0,
          "cogs/sentinel-2-l2a/S2A_20230612_NAIROBI/B04.tif"),
    Scene("LC09_20230611_MUNICH", LANDSAT, MUNICH, datetime(2023, 6, 11, 10, 0, tzinfo=UTC), 1.0,
          "cogs/landsat-c2-l2/LC09_20230611_MUNICH/red.tif"),
    Scene("S1A_IW_GRDH_20230613_MUNICH", S1, MUNICH, datetime(2023, 6, 13, 5, 30, tzinfo=UTC), None,
          "cogs/sentinel-1-grd/S1A_IW_GRDH_20230613_MUNICH/vv.tif"),
)
SEARCH = {"collections": [S2], "bbox": [11.5, 48.1, 11.6, 48.2], "datetime": "2023-06-01/2023-06-30",
          "filter": {"op": "<", "args": [{"property": "eo:cloud_cover"}, 50]}, "filter_lang": "cql2-json"}
EXPECTED_HITS = {"S2A_20230610_MUNICH", "S2B_20230615_MUNICH"}


def _write_cog(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).integers(0, 10000, (1, 256, 256), dtype=np.uint16)
    profile = {"driver": "COG", "width": 256, "height": 256, "count": 1, "dtype": "uint16", "crs": "EPSG:32632",
               "transform": Affine(10.0, 0.0, 690000.0, 0.0, -10.0, 5340000.0), "blocksize": 128,
               "compress": "deflate"}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def build_fixture_archive(root: Path) -> None:
    """A miniature archive in the builder's layout: ARCHIVE.json, stac/collections, stac/items.ndjson, cogs/."""
    (root / "stac" / "collections").mkdir(parents=True)
    for cid in COLLECTIONS:
        extent = pystac.Extent(pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]),
                               pystac.TemporalExtent([[datetime(2015, 6, 23, tzinfo=UTC), None]]))
        coll = pystac.Collection(cid, f"test collection {cid}", extent, license="proprietary")
        (root / "stac" / "collections" / f"{cid}.json").write_text(json.dumps(coll.to_dict(include_self_link=False)))
    with (root / "stac" / "items.ndjson").open("w") as f:
        for n, sc in enumerate(SCENES):
            _write_cog(root / sc.asset, n)
            w, s, e, nn = sc.bbox
            geom = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, nn], [w, nn], [w, s]]]}
            props: dict[str, object] = {"proj:code": "EPSG:32632"}
            props.update({"eo:cloud_cover": sc.cloud} if sc.cloud is not None else {"sar:polarizations": ["VV"]})
            item = pystac.Item(sc.id, geom, list(sc.bbox), sc.when, props, collection=sc.collection)
            item.add_asset("B04", pystac.Asset(sc.asset, media_type=pystac.MediaType.COG, roles=["data"]))
            d = item.to_dict(include_self_link=False)
            d["links"] = [{"rel": "collection", "href": f"../collections/{sc.collection}.json"}]
            f.write(json.dumps(d) + "\n")
    (root / "ARCHIVE.json").write_text(json.dumps({"version": 1, "stamp": "test", "collections": list(COLLECTIONS)}))


@pytest.fixture(scope="module")
def serve_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve-archive")
    build_fixture_archive(root)
    return root


@pytest.fixture(scope="module")
def serve_geoparquet(serve_root: Path) -> Iterator[Endpoints]:
    with serve_archive(serve_root, api="geoparquet") as ep:
        yield ep


def _processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line or working directory contains ``text``."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(ln for ln in (d / "status").read_text().splitlines() if ln.startswith("State:"))
            cwd = os.readlink(d / "cwd")
        except (OSError, StopIteration):
            continue
        if (text in cmd or text in cwd) and "zombie" not in state:
            pids.append(int(d.name))
    return pids


def _refused(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
    except requests.ConnectionError:
        return True
    return False


# --------------------------------------------------------------------------------------------------------------
# COG server


def test_range_request_returns_206_with_the_right_bytes(serve_geoparquet: Endpoints, serve_root: Path) -> None:
    rel = SCENES[0].asset
    local = (serve_root / rel).read_bytes()
    r = requests.get(f"{serve_geoparquet.http_base}/{rel}", headers={"Range": "bytes=100-1123"}, timeout=5)
    assert r.status_code == 206
    assert r.content == local[100:1124]
    assert r.headers["content-range"] == f"bytes 100-1123/{len(local)}"
    head = requests.head(f"{serve_geoparquet.http_base}/{rel}", timeout=5)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(local)
    assert head.headers["accept-ranges"] == "bytes"
    assert requests.get(f"{serve_geoparquet.http_base}/cogs/nope.tif", timeout=5).status_code == 404


def test_rasterio_reads_a_cog_over_http(serve_geoparquet: Endpoints, serve_root: Path) -> None:
    rel = SCENES[1].asset  # its name has a space: the href must be quoted
    window = Window(100, 90, 60, 70)  # crosses four 128x128 tiles
    with rasterio.open(serve_root / rel) as src:
        expected = src.read(1, window=window)
    items = json.loads(serve_geoparquet.item_collection.read_text())["features"]
    href = next(it for it in items if it["id"] == SCENES[1].id)["assets"]["B04"]["href"]
    assert href == f"{serve_geoparquet.http_base}/{rel.replace(' ', '%20')}"
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(href) as src:
        assert src.crs.to_epsg() == 32632
        np.testing.assert_array_equal(src.read(1, window=window), expected)


def test_injected_latency_is_observable_and_hidden_by_concurrency(serve_root: Path) -> None:
    url_of = f"{SCENES[0].asset}"
    with serve_archive(serve_root, api="geoparquet", latency_ms=300) as ep:
        session = requests.Session()
        t0 = time.perf_counter()
        assert session.head(f"{ep.http_base}/{url_of}", timeout=5).status_code == 200
        one = time.perf_counter() - t0
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            t0 = time.perf_counter()
            codes = list(pool.map(lambda _: requests.get(f"{ep.http_base}/{url_of}",
                                                         headers={"Range": "bytes=0-99"}, timeout=5).status_code,
                                  range(8)))
            eight = time.perf_counter() - t0
    assert one >= 0.3
    assert codes == [206] * 8
    assert eight < 4 * 0.3  # concurrent: 8 sequential requests would take 8 x 300 ms


# --------------------------------------------------------------------------------------------------------------
# Indexes


def _normalized(item: dict[str, Any]) -> dict[str, Any]:
    """An item as stac-geoparquet gives it back: keys of other items' properties come back as None; datetimes
    come back in another (equal) spelling."""
    out = json.loads(json.dumps(item))
    out["properties"] = {k: v for k, v in out["properties"].items() if v is not None}
    out["properties"]["datetime"] = datetime.fromisoformat(out["properties"]["datetime"]).isoformat()
    out.pop("links", None)  # the localized items have none; an empty list may come back absent
    return out


def test_geoparquet_round_trips_to_the_localized_items(serve_geoparquet: Endpoints, serve_root: Path) -> None:
    originals = [json.loads(ln) for ln in (serve_root / "stac" / "items.ndjson").read_text().splitlines()]
    expected = {}
    for it in originals:  # what localizing must do: absolute http hrefs, relative links gone
        for asset in it["assets"].values():
            asset["href"] = f"{serve_geoparquet.http_base}/{asset['href'].replace(' ', '%20')}"
        it["links"] = []
        expected[it["id"]] = _normalized(it)
    items = list(stac_geoparquet.arrow.stac_table_to_items(pq.read_table(serve_geoparquet.geoparquet)))
    assert {it["id"]: _normalized(it) for it in items} == expected
    for it in items:
        assert requests.head(it["assets"]["B04"]["href"], timeout=5).status_code == 200
    meta = json.loads(pq.read_schema(serve_geoparquet.geoparquet).metadata[b"stac-geoparquet"])
    assert set(meta["collections"]) == set(COLLECTIONS)
    ic = json.loads(serve_geoparquet.item_collection.read_text())
    assert ic["type"] == "FeatureCollection"
    assert {it["id"]: _normalized(it) for it in ic["features"]} == expected
    assert len(pystac.ItemCollection.from_dict(ic)) == len(SCENES)


# --------------------------------------------------------------------------------------------------------------
# Lifecycle and errors


def test_everything_is_stopped_and_removed_after_the_context(tmp_path: Path) -> None:
    build_fixture_archive(tmp_path)
    with serve_archive(tmp_path, api="geoparquet") as ep:
        tmp = ep.geoparquet.parent
        assert _processes_mentioning(str(tmp_path))  # the COG server: --root <archive>
        assert requests.head(f"{ep.http_base}/ARCHIVE.json", timeout=5).status_code == 200
    assert not tmp.exists()
    assert _refused(f"{ep.http_base}/ARCHIVE.json")
    assert not _processes_mentioning(str(tmp_path))


def test_stopped_on_an_exception_in_the_body(tmp_path: Path) -> None:
    build_fixture_archive(tmp_path)
    with pytest.raises(RuntimeError), serve_archive(tmp_path, api="geoparquet") as ep:
        assert _processes_mentioning(str(tmp_path))
        raise RuntimeError("boom")
    assert not _processes_mentioning(str(tmp_path))
    assert not ep.geoparquet.parent.exists()
    assert _refused(ep.http_base)


def test_works_from_a_thread_that_is_not_the_main_thread(serve_root: Path) -> None:
    result: dict[str, object] = {}

    def run() -> None:
        with serve_archive(serve_root, api="geoparquet") as ep:
            result["status"] = requests.head(f"{ep.http_base}/{SCENES[0].asset}", timeout=5).status_code

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    assert result == {"status": 200}


def test_missing_archive_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match=r"does not exist; build it with 'ssl4eo archive build'"):
        serve_archive(tmp_path / "nope", api="geoparquet").__enter__()
    (tmp_path / "half").mkdir()
    with pytest.raises(ArchiveError, match=r"no ARCHIVE\.json.*--force"):
        serve_archive(tmp_path / "half", api="pgstac").__enter__()


def test_busy_port_is_a_clear_error(serve_geoparquet: Endpoints, serve_root: Path) -> None:
    port = int(serve_geoparquet.http_base.rsplit(":", 1)[1])
    with pytest.raises(ArchiveError, match=rf"cannot listen on 127\.0\.0\.1:{port}.*http_port"):
        serve_archive(serve_root, api="geoparquet", http_port=port).__enter__()


def test_serve_forever_prints_endpoints_and_stops_on_ctrl_c(serve_root: Path) -> None:
    code = f"import sys; from pipeline.archive.serve import serve_forever; sys.exit(serve_forever({str(serve_root)!r}))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        out = "".join(lines)
        base = next(ln.split()[-1] for ln in lines if ln.startswith("COG base")).rstrip("/")
        assert "STAC API" in out and "geoparquet" in out
        assert requests.head(f"{base}/ARCHIVE.json", timeout=5).status_code == 200
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, out + rest
    assert "stopped" in rest
    assert _refused(base)


# --------------------------------------------------------------------------------------------------------------
# pgstac


@pytest.fixture(scope="module")
def serve_pgstac(serve_root: Path) -> Iterator[Endpoints]:
    with serve_archive(serve_root, api="pgstac") as ep:
        yield ep


@pytest.mark.pgstac
def test_pgstac_search_returns_exactly_the_expected_items(serve_pgstac: Endpoints, serve_root: Path) -> None:
    from pystac_client import Client

    assert serve_pgstac.stac_url is not None
    client = Client.open(serve_pgstac.stac_url)
    found = list(client.search(max_items=100, **SEARCH).items())
    assert {it.id for it in found} == EXPECTED_HITS
    everything = list(client.search(collections=list(COLLECTIONS), max_items=100).items())
    assert {it.id for it in everything} == {sc.id for sc in SCENES}
    it = next(i for i in found if i.id == SCENES[0].id)
    assert it.assets["B04"].href == f"{serve_pgstac.http_base}/{SCENES[0].asset}"
    with rasterio.open(it.assets["B04"].href) as src, rasterio.open(serve_root / SCENES[0].asset) as ref:
        np.testing.assert_array_equal(src.read(), ref.read())


@pytest.mark.pgstac
def test_pgstac_sorts_numeric_properties_as_numbers(serve_pgstac: Endpoints) -> None:
    assert serve_pgstac.stac_url is not None
    body = {"collections": [S2], "sortby": [{"field": "properties.eo:cloud_cover", "direction": "asc"}]}
    r = requests.post(f"{serve_pgstac.stac_url}/search", json=body, timeout=10)
    clouds = [f["properties"]["eo:cloud_cover"] for f in r.json()["features"]]
    assert clouds == sorted(sc.cloud for sc in SCENES if sc.collection == S2)  # not as text: 10 < 3 < 49.5
    queryables = requests.get(f"{serve_pgstac.stac_url}/queryables", timeout=10).json()["properties"]
    assert queryables["eo:cloud_cover"]["type"] == "number"


@pytest.mark.pgstac
def test_pgstac_servers_are_gone_after_the_context(serve_root: Path) -> None:
    with serve_archive(serve_root, api="pgstac") as ep:
        tmp = ep.geoparquet.parent
        assert ep.stac_url is not None
        assert requests.get(f"{ep.stac_url}/collections", timeout=5).status_code == 200
        assert _processes_mentioning(str(tmp))  # postgres -D <tmp>/pg/data
    assert not _processes_mentioning(str(tmp))
    assert not tmp.exists()
    assert _refused(ep.stac_url)


@pytest.mark.pgstac
def test_pgstac_startup_deadline_is_a_clear_error(serve_root: Path) -> None:
    before = set(_processes_mentioning("ssl4eo-archive-serve-"))
    t0 = time.perf_counter()
    with pytest.raises(ArchiveError) as err, serve_archive(serve_root, api="pgstac", deadline_s=0.3):
        pass
    msg = str(err.value)
    assert "\n" not in msg and "within the 0.3 s startup deadline" in msg and "raise deadline_s" in msg, msg
    assert time.perf_counter() - t0 < 15
    assert set(_processes_mentioning("ssl4eo-archive-serve-")) <= before


@pytest.mark.pgstac
def test_servers_stop_on_their_own_when_the_client_process_is_killed(serve_root: Path) -> None:
    code = ("import time; from pipeline.archive.serve import serve_archive\n"
            f"with serve_archive({str(serve_root)!r}, api='pgstac') as ep:\n"
            "    print(ep.geoparquet.parent, flush=True); time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    tmp = proc.stdout.readline().strip()
    try:
        assert tmp and len(_processes_mentioning(tmp)) >= 3  # COG server, STAC API, PostgreSQL (+ its guard)
        proc.kill()  # no cleanup code runs in the client
        proc.wait()
        t0 = time.perf_counter()
        while _processes_mentioning(tmp) and time.perf_counter() - t0 < 20:
            time.sleep(0.2)
        assert not _processes_mentioning(tmp)
    finally:
        proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def test_missing_postgis_names_the_fix(serve_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("initdb", "postgres"):
        (fake / name).write_text("#!/bin/sh\nexit 1\n")
    (fake / "pg_config").write_text(f"#!/bin/sh\necho {tmp_path / 'share'}\n")
    for p in fake.iterdir():
        p.chmod(0o755)
    monkeypatch.setenv("SSL4EO_PG_BIN", str(fake))
    with pytest.raises(ArchiveError, match=r"'postgis' is missing.*run make system-deps"):
        serve_archive(serve_root, api="pgstac").__enter__()
