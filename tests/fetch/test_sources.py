"""Serverless indexes over http(s), and href signing, on every source kind."""

from __future__ import annotations

import datetime as dt
import functools
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.errors import SourceError
from pipeline.sources import SearchQuery
from pipeline.sources.index import IndexSource
from pipeline.sources.signing import href_signer, signed

MUNICH = (11.4, 48.0, 11.8, 48.3)
QUERY = SearchQuery("sentinel-2-l2a", MUNICH, dt.datetime(2023, 1, 1, tzinfo=dt.UTC),
                    dt.datetime(2024, 12, 31, tzinfo=dt.UTC), None, 500)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real HTTP server on 127.0.0.1 serving a temporary folder."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(tmp_path)))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("name", ["items.parquet", "items.json", "items.ndjson"])
def test_an_index_over_http_searches_like_the_local_file(served_geoparquet, http_folder, name: str) -> None:
    folder, base = http_folder
    local = Path(served_geoparquet.geoparquet).parent / name
    shutil.copyfile(local, folder / name)
    want = IndexSource(str(local)).search(QUERY)
    got = IndexSource(f"{base}/{name}?version=1").search(QUERY)  # a query string does not hide the suffix
    assert want and got == want


def test_a_missing_index_url_is_one_clear_line(http_folder) -> None:
    _, base = http_folder
    with pytest.raises(SourceError) as e:
        IndexSource(f"{base}/nowhere.parquet", retries=0)
    assert "HTTP 404" in str(e.value) and "nowhere.parquet" in str(e.value) and "\n" not in str(e.value)


def _blob_items(tmp_path: Path) -> Path:
    def item(i: int, href: str) -> dict:
        return {"type": "Feature", "stac_version": "1.0.0", "id": f"S2_{i}", "collection": "sentinel-2-l2a",
                "geometry": {"type": "Polygon", "coordinates": [[[11, 48], [12, 48], [12, 49], [11, 49], [11, 48]]]},
                "bbox": [11, 48, 12, 49], "links": [],
                "properties": {"datetime": f"2023-06-{10 + i}T10:00:00Z", "eo:cloud_cover": 5.0},
                "assets": {"B04": {"href": href}}}

    path = tmp_path / "blob-items.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        item(1, "https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/T32UPU/B04.tif"),
        item(2, str(tmp_path / "local" / "B04.tif")),
    ]}))
    return path


def test_index_hrefs_are_signed_at_search_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real planetary_computer signing path, with its token cache filled beforehand (the token service
    cannot be reached from here): blob-storage hrefs get the token, local files stay as they are, and a token
    that expires is renewed on a later search because nothing signed is cached."""
    pc = pytest.importorskip("planetary_computer")
    from planetary_computer.sas import SASToken

    settings = pc.settings.Settings.get()
    token_url = f"{settings.sas_url}/sentinel2l2a01/sentinel2-l2"

    def put(token: str) -> None:
        expiry = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        monkeypatch.setitem(pc.sas.TOKEN_CACHE, token_url, SASToken(token=token, **{"msft:expiry": expiry}))

    put("st=1&se=2&sp=rl&sig=first")
    src = IndexSource(str(_blob_items(tmp_path)), sign="planetary-computer")
    hrefs = {r.id: r.asset("B04").href for r in src.search(QUERY)}
    assert hrefs == {"S2_1": "https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/T32UPU/B04.tif?"
                             "st=1&se=2&sp=rl&sig=first",
                     "S2_2": str(tmp_path / "local" / "B04.tif")}
    put("st=3&se=4&sp=rl&sig=renewed")
    assert src.search(QUERY)[0].asset("B04").href.endswith("sig=renewed")
    assert IndexSource(str(_blob_items(tmp_path))).search(QUERY)[0].asset("B04").href.endswith("B04.tif")


def test_a_signing_failure_is_a_source_error(tmp_path: Path) -> None:
    refs = IndexSource(str(_blob_items(tmp_path))).search(QUERY)

    def broken(href: str) -> str:
        raise ConnectionError("token service unreachable")

    with pytest.raises(SourceError, match=r"cannot sign asset hrefs .*token service unreachable"):
        signed(refs, broken)
    assert href_signer("none") is None
    with pytest.raises(SourceError, match=r"source\.sign 'aws' is unknown"):
        href_signer("aws")
