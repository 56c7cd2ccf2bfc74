"""The whole pipeline through the CLI on the embedded archive: sample -> download -> shard -> catalog."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pystac
import pytest
import xarray as xr

from pipeline.archive.truthcheck import subpixel_offset
from pipeline.ledger import read_ledger

CONFIG = """
sampling:
  n_locations: 10
  seed: 7
dask:
  n_workers: 1
  threads_per_worker: 4
"""


@pytest.fixture(scope="module")
def run_out(tmp_path_factory: pytest.TempPathFactory, archive_root: Path) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("e2e")
    cfg = tmp / "cfg.yaml"
    cfg.write_text(CONFIG + f"archive:\n  path: {archive_root}\n")
    out = tmp / "out"
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--config", str(cfg), "--out", str(out)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return out, r.stdout


def test_outputs_exist_and_summary_printed(run_out: tuple[Path, str]) -> None:
    out, stdout = run_out
    assert (out / "locations.parquet").is_file()
    assert (out / "dataset.zarr").is_dir()
    assert (out / "catalog" / "catalog.json").is_file()
    assert "dask dashboard: http://127.0.0.1:" in stdout
    for word in ("locations sampled", "complete", "patches", "dataset", "catalog"):
        assert word in stdout


def test_every_location_accounted_for(run_out: tuple[Path, str]) -> None:
    out, _ = run_out
    locs = gpd.read_parquet(out / "locations.parquet")
    ledger = read_ledger(out)
    assert set(ledger) == set(locs.location_id)
    complete = sorted(k for k, e in ledger.items() if e.status == "complete")
    assert complete, "no location completed on the default archive"
    ds = xr.open_zarr(out / "dataset.zarr", group="s2_l2a")
    assert ds["bands"].shape[0] == len(complete)
    assert ds["bands"].shape[1:] == (4, 12, 264, 264)


def test_shards_are_where_the_truth_says(run_out: tuple[Path, str]) -> None:
    """Pixels in the final Zarr store (not just staging) come from the recorded scene, at the recorded grid."""
    out, _ = run_out
    ds = xr.open_zarr(out / "dataset.zarr", group="s2_l2a")
    names = [str(b) for b in ds["band"].values]
    i = 0
    arr = ds["bands"][i].values
    transform = tuple(float(v) for v in ds["transform"][i].values)
    epsg = int(ds["epsg"][i].values)
    for t in range(4):
        scene = str(ds["scene_id"][i, t].values)
        obs = {names[k]: arr[t, k] for k in (1, 2, 3, 7)}  # the 10 m bands
        off = subpixel_offset(obs, scene, transform, epsg)
        assert off.magnitude_px < 0.02, off


def test_catalog_links_samples_and_sources(run_out: tuple[Path, str]) -> None:
    out, _ = run_out
    cat = pystac.Catalog.from_file(str(out / "catalog" / "catalog.json"))
    items = list(cat.get_items(recursive=True))
    ds = xr.open_zarr(out / "dataset.zarr", group="s2_l2a")
    assert len(items) == ds["bands"].shape[0]
    it = items[0]
    derived = [link for link in it.links if link.rel == "derived_from"]
    assert len(derived) >= 4
    assert np.isfinite(json.loads(json.dumps(it.to_dict()))["bbox"]).all()
