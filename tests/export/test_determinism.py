"""Same inputs -> identical bytes, whether shards are written in this process or by a Dask cluster."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from export.catalog import write_catalog
from export.shard import creation_time
from tests.export.conftest import build, stage


def tree_digest(out: Path) -> dict[str, str]:
    files = {}
    for sub in ("dataset.zarr", "catalog"):
        for p in sorted((out / sub).rglob("*")):
            if p.is_file():
                files[str(p.relative_to(out))] = hashlib.sha256(p.read_bytes()).hexdigest()
    files["dataset.parquet"] = hashlib.sha256((out / "dataset.parquet").read_bytes()).hexdigest()
    return files


@pytest.mark.slow
def test_same_inputs_give_identical_bytes(tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    a = stage(tmp_path / "a")
    b = stage(tmp_path / "b")
    build(a)
    write_catalog(a)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster, Client(cluster) as client:
        summary = build(b, client=client)
    write_catalog(b)
    assert summary.written == 3
    da, db = tree_digest(a), tree_digest(b)
    assert len(da) > 50
    assert da == db


def test_creation_time_follows_source_date_epoch() -> None:
    assert creation_time({"SOURCE_DATE_EPOCH": "1700000000"}) == "2023-11-14T22:13:20Z"
    assert creation_time({}).endswith("Z")
    from pipeline.errors import UserError

    with pytest.raises(UserError, match="SOURCE_DATE_EPOCH"):
        creation_time({"SOURCE_DATE_EPOCH": "yesterday"})
