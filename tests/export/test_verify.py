"""``ssl4eo verify`` finds a corrupted chunk, a missing item, NaN and all-nodata samples; exits 1 listing them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from export.layout import bands_shard_key
from export.verify import verify
from pipeline.cli import main as cli
from tests.export.conftest import build


@pytest.fixture
def copy(built: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "out"
    shutil.copytree(built, dest)
    return dest


def test_clean_output_verifies(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["verify", str(built)]) == 0
    assert "verify: ok: 20 samples, 6 shards, 40 items" in capsys.readouterr().out


def test_corrupted_chunk_and_missing_item_are_listed(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shard = copy / "dataset.zarr" / bands_shard_key("s2_l2a", 1)
    raw = bytearray(shard.read_bytes())
    mid = len(raw) // 3
    raw[mid : mid + 16] = bytes(b ^ 0x5A for b in raw[mid : mid + 16])
    shard.write_bytes(bytes(raw))
    item = next((copy / "catalog" / "s1_rtc" / "items").glob("s1_rtc-0000021.json"))
    item.unlink()
    assert cli(["verify", str(copy)]) == 1
    out = capsys.readouterr().out
    assert "problem(s)" in out
    assert "s2_l2a shard 1 (samples 8-15): file s2_l2a/bands/c/1/0/0/0/0 CRC32C" in out
    assert "delete dataset.state/000001.json and rerun 'ssl4eo shard' to rewrite it" in out
    assert "chunk does not decode" in out and "s2_l2a sample " in out
    assert "s1_rtc item link ./items/s1_rtc-0000021.json does not resolve" in out
    assert "no s1_rtc item for sample 4 (location 0000021)" in out
    (copy / "dataset.state" / "000001.json").unlink()  # what the message says to do
    assert build(copy).written == 1
    assert not any("shard 1" in p or "s2_l2a sample" in p for p in verify(copy).problems)


def test_nan_nodata_and_mismatched_items_are_listed(copy: Path) -> None:
    import zarr

    store = zarr.open_group(copy / "dataset.zarr", mode="r+", use_consolidated=False)
    s1 = store["s1_rtc"]["bands"]
    s2 = store["s2_l2a"]["bands"]
    block1 = s1[16:20]
    block1[1, 2, 0, 3, 3] = np.nan
    s1[16:20] = block1  # a whole (short, last) shard rewritten through zarr: the stored CRC no longer matches
    block2 = s2[16:20]
    block2[0, 3] = 0
    s2[16:20] = block2
    (copy / "catalog" / "s2_l2a" / "items" / "s2_l2a-0000003.json").write_text(
        (copy / "catalog" / "s2_l2a" / "items" / "s2_l2a-0000003.json").read_text()
        .replace('"ssl4eo:location_id": 3', '"ssl4eo:location_id": 4'))
    block1 = s1[8:16]
    block1[0, 1, 0, 0, :] = np.nan  # SAR's nodata is NaN: allowed where the patch records its nodata share...
    block1[1, 1] = np.nan  # ...but never all of it
    s1[8:16] = block1
    frac = store["s1_rtc"]["nodata_fraction"]
    f = frac[...]
    f[8, 1] = 0.002
    frac[...] = f
    problems = verify(copy).problems
    text = "\n".join(problems)
    assert "s1_rtc sample 17 (location 0010946) season 2: holds NaN, but its nodata_fraction is 0" in text
    assert "s1_rtc sample 9 (location 0000233) season 1: all pixels are NaN" in text
    assert "s1_rtc sample 8 " not in text
    assert "s2_l2a sample 16 (location 0006765) season 3: all pixels are nodata (0.0)" in text
    assert "s1_rtc shard 2 (samples 16-19): file s1_rtc/bands/c/2/0/0/0/0 CRC32C" in text
    assert "catalog item s2_l2a-0000003: location 4 != store sample 0's location 3" in text


def test_missing_store_and_index(tmp_path: Path, copy: Path) -> None:
    assert "missing; run 'ssl4eo shard'" in verify(tmp_path).problems[0]
    (copy / "dataset.parquet").unlink()
    assert any("dataset.parquet: missing" in p for p in verify(copy).problems)


def test_unreadable_catalog_index_and_schema_problems_are_listed(copy: Path) -> None:
    import json

    item = next((copy / "catalog" / "s2_l2a" / "items").glob("*.json"))
    raw = json.loads(item.read_text())
    raw["properties"]["proj:shape"] = [16]
    item.write_text(json.dumps(raw))
    problems = verify(copy).problems
    assert any(p.startswith("catalog schema: ") and item.name in p for p in problems), problems
    (copy / "catalog" / "s1_rtc" / "collection.json").write_text('{"type": "Coll')
    (copy / "dataset.parquet").write_bytes(b"PAR1 cut short")
    problems = verify(copy).problems
    assert any("catalog.json: cannot be read (" in p and "rerun 'ssl4eo catalog'" in p for p in problems), problems
    assert any("dataset.parquet: cannot be read (" in p for p in problems), problems


def test_a_corrupt_metadata_chunk_is_listed(copy: Path) -> None:
    chunk = next(p for p in (copy / "dataset.zarr" / "s2_l2a" / "scene_id").rglob("*") if p.is_file()
                 and p.name != "zarr.json")
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    chunk.write_bytes(bytes(raw))
    problems = verify(copy).problems
    assert any(p.startswith("s2_l2a: metadata array scene_id does not decode") for p in problems), problems
