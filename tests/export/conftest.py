"""Fixtures of the export tests: small synthetic staging stores (16 px patches) built with write_location."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.catalog import write_catalog
from export.codecs import CodecSpec
from export.model import ExportSpec, ProductLayout, product_layout
from export.shard import build_dataset
from export.testing import stage_synthetic
from pipeline.ledger import Entry, LedgerWriter, Reason

PATCH = 16
SHARD = 8
IDS = [3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597, 2584, 4181, 6765, 10946, 17711, 28657]
"""20 locations: 3 shards of 8 (the last one holds 4)."""
CREATED = "2026-01-01T00:00:00Z"


def layouts() -> tuple[ProductLayout, ...]:
    s2 = product_layout("s2_l2a", ("B02", "B03", "B04", "B08"), PATCH)
    s1 = product_layout("s1_rtc", None, PATCH, dtype="float32", nodata=None)  # as the fetch stage stages SAR
    return (s2, s1)


def spec(shard_size: int = SHARD, **kw) -> ExportSpec:  # type: ignore[no-untyped-def]
    kw.setdefault("stats_stride", 1)  # every pixel, so the tests can compare with numpy exactly
    return ExportSpec(layouts(), shard_size, kw.pop("codec", CodecSpec()), **kw)


def stage(out: Path, ids: list[int] = IDS) -> Path:
    stage_synthetic(out, layouts(), ids)
    return out


def build(out: Path, client=None, **kw):  # type: ignore[no-untyped-def]
    return build_dataset(out, kw.pop("spec", None) or spec(), config_hash="test", created=CREATED, version="0.0.test",
                         client=client, **kw)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished output folder: staging, ledger with failures, dataset.zarr, dataset.parquet, catalog."""
    out = stage(tmp_path_factory.mktemp("built"))
    with LedgerWriter(out) as w:
        for loc in IDS:
            w.write(Entry(loc, "complete", time="2026-01-01T00:00:00Z"))
        for loc, reason in ((4, Reason.TOO_CLOUDY), (6, Reason.NODATA), (7, Reason.SOURCE_ERROR)):
            w.write(Entry(loc, "failed", reason=reason.value, time="2026-01-01T00:00:00Z"))
    write_locations(out, [*IDS, 4, 6, 7])
    build(out)
    write_catalog(out)
    return out


def write_locations(out: Path, ids: list[int]) -> None:
    """A sampler-like ``locations.parquet`` (GeoParquet, EPSG:4326 footprints) for ``ids``."""
    import geopandas as gpd
    import numpy as np
    from shapely.geometry import box

    rng = np.random.default_rng(1)
    lon = rng.uniform(-170, 170, len(ids))
    lat = rng.uniform(-60, 65, len(ids))
    gdf = gpd.GeoDataFrame({
        "location_id": ids, "lon": lon, "lat": lat, "epsg": [32632] * len(ids),
        "city": [f"city{i}" for i in ids], "country": ["XX"] * len(ids), "city_id": ids, "dist_m": [100.0] * len(ids),
    }, geometry=[box(x - 0.01, y - 0.01, x + 0.01, y + 0.01) for x, y in zip(lon, lat, strict=True)], crs=4326)
    gdf.to_parquet(out / "locations.parquet")
