"""Config errors reach the user as one clear line and a non-zero exit; the default config round-trips."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config import Config, config_to_yaml, load_config
from pipeline.config.load import config_from_dict
from pipeline.errors import ConfigError


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


def test_show_default_round_trips() -> None:
    r = run_cli("config", "show")
    assert r.returncode == 0, r.stderr
    data = yaml.safe_load(r.stdout)
    assert data["source"]["url"] == "embedded"
    assert data["sampling"]["n_locations"] == Config().sampling.n_locations
    assert config_from_dict(data) == Config()


def test_unknown_key_names_key_and_nearest(tmp_path: Path) -> None:
    r = run_cli("config", "show", "--config", str(write(tmp_path, "sampling:\n  n_location: 5\n")))
    assert r.returncode == 2
    line = r.stderr.strip()
    assert "\n" not in line
    assert "sampling.n_location" in line and "n_locations" in line


def test_unknown_top_level_section(tmp_path: Path) -> None:
    r = run_cli("sample", "--config", str(write(tmp_path, "sampler:\n  seed: 1\n")), "--out", str(tmp_path))
    assert r.returncode == 2
    assert "'sampler'" in r.stderr and "sampling" in r.stderr
    assert not (tmp_path / "locations.parquet").exists()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("sampling:\n  n_locations: many\n", "sampling.n_locations"),
        ("sampling:\n  sigma_m: -5\n", "sampling.sigma_m"),
        ("products:\n  - name: s2_l2b\n", "did you mean 's2_l2a'"),
        ("products:\n  - {name: s2_l2a, bands: [B99]}\n", "B99"),
        ("seasons:\n  reference_dates: ['13-40']\n", "MM-DD"),
        ("quality:\n  max_patch_cloud: 3\n", "quality.max_patch_cloud"),
        ("seasons:\n  seed: -1\n", "seasons.seed"),
        ("seasons:\n  years: []\n", "seasons.years"),
        ("dask:\n  memory_limit: lots\n", "use e.g. '3GiB'"),
    ],
)
def test_bad_values(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text))
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    r = run_cli("config", "show", "--config", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "not found" in r.stderr and r.stderr.count("\n") == 1
    r = run_cli("config", "show", "--config", str(write(tmp_path, "sampling: [unclosed\n")))
    assert r.returncode == 2 and "not valid YAML" in r.stderr
    with pytest.raises(ConfigError, match="is a folder; pass a YAML file"):
        load_config(tmp_path)
    assert load_config(write(tmp_path, "sampling:\nexport:\n  shard_size: 8\n")).sampling == Config().sampling


def test_bad_out_and_dir_are_one_line(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    for args in (("sample", "--out", str(afile)), ("verify", str(tmp_path / "nope")), ("report", str(afile))):
        r = run_cli(*args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, (args, r.stderr)
    assert not (tmp_path / "nope").exists()


def test_unreachable_source_url(tmp_path: Path) -> None:
    cfg = write(tmp_path, "source:\n  url: http://127.0.0.1:9/api/stac/v1\n  timeout_s: 2\n  retries: 0\n")
    r = run_cli("download", "--config", str(cfg), "--out", str(tmp_path / "out"))
    assert r.returncode == 2, r.stderr
    assert "cannot open STAC API" in r.stderr and "127.0.0.1:9" in r.stderr
    assert r.stderr.strip().count("\n") == 0
    assert not (tmp_path / "out" / "staging").exists()


def test_a_missing_archive_at_a_custom_path_names_the_command_with_its_config(tmp_path: Path) -> None:
    cfg = write(tmp_path, f"archive:\n  path: {tmp_path / 'arch'}\n")
    r = run_cli("download", "--config", str(cfg), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "arch' is missing or stale; run 'ssl4eo archive build --config <this config>'" in r.stderr
    assert not (tmp_path / "out" / "staging").exists()


def test_missing_index_file(tmp_path: Path) -> None:
    cfg = write(tmp_path, f"source:\n  url: {tmp_path / 'missing.parquet'}\n")
    r = run_cli("download", "--config", str(cfg), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "missing.parquet" in r.stderr and "not found" in r.stderr


def test_yaml_dump_is_loadable(tmp_path: Path) -> None:
    cfg = Config()
    p = write(tmp_path, config_to_yaml(cfg))
    assert load_config(p) == cfg


def test_a_collection_override_reaches_the_export_layout() -> None:
    from pipeline.stages.shard import export_spec

    renamed = config_from_dict({"products": [{"name": "s2_l2a", "collection": "landsatlook-style-s2"}]})
    assert export_spec(renamed).products[0].collection == "landsatlook-style-s2"  # group attrs and STAC record it
    assert export_spec(Config()).products[0].collection == "sentinel-2-l2a"
