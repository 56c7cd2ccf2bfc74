"""The CLI glue: ``ssl4eo shard|catalog|verify|report`` on a LocalCluster, from a config file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
import zarr

from export.testing import stage_synthetic
from pipeline.cli import main as cli
from pipeline.config import load_config
from pipeline.stages.shard import config_hash, export_spec

CONFIG = {
    "products": [{"name": "s2_l2a", "patch_px": 16, "bands": ["B02", "B03", "B04", "B08"]},
                 {"name": "s1_rtc", "patch_px": 16}],
    "dask": {"n_workers": 2, "memory_limit": "1GiB"},
    "export": {"shard_size": 4, "compressor": "blosc-zstd", "level": 3, "shuffle": "shuffle", "stats_stride": 2},
}


@pytest.mark.slow
def test_cli_shard_catalog_verify_report(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(yaml.safe_dump(CONFIG))
    cfg = load_config(cfg_file)
    spec = export_spec(cfg)
    assert [p.dtype for p in spec.products] == ["uint16", "float32"]  # SAR as the fetch stage stages it
    out = tmp_path / "out"
    stage_synthetic(out, spec.products, range(100, 110))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert cli(["shard", "--config", str(cfg_file), "--out", str(out)]) == 0
    assert "shard: 10 samples in 3 shards (3 written, 0 kept)" in capsys.readouterr().out
    assert cli(["catalog", "--config", str(cfg_file), "--out", str(out)]) == 0
    assert "catalog: 2 collection(s), 20 item(s)" in capsys.readouterr().out
    assert cli(["verify", str(out)]) == 0
    assert cli(["report", str(out)]) == 0
    root = json.loads((out / "dataset.zarr" / "zarr.json").read_text())["attributes"]["ssl4eo"]
    assert root["created"] == "2023-11-14T22:13:20Z" and root["config_hash"] == config_hash(cfg)
    bands = zarr.open_array(out / "dataset.zarr", path="s2_l2a/bands", mode="r")
    assert bands.shards == (4, 4, 4, 16, 16)
    assert type(bands.compressors[0]).__name__ == "BloscCodec" and bands.compressors[0].cname.value == "zstd"
    assert type(bands.compressors[-1]).__name__ == "Crc32cCodec"


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(yaml.safe_dump({"products": [{"name": "s2_l2a", "patch_px": 16}],
                                        "dask": {"n_workers": 1}}))
    assert cli(["shard", "--config", str(cfg_file), "--out", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no complete staged location") and "ssl4eo download" in err and "\n" not in err
    assert cli(["catalog", "--out", str(tmp_path / "none")]) == 2
    assert "run 'ssl4eo shard' first" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"export": {"compressor": "blosc-lz4", "level": 12}}))
    assert cli(["shard", "--config", str(bad), "--out", str(tmp_path)]) == 2
    assert "level 12 is out of range for blosc-lz4" in capsys.readouterr().err
