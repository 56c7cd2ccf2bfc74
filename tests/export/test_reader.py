"""The training read path returns exactly what zarr returns, for every codec we write, and catches corruption."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from export.codecs import CodecSpec
from export.reader import ShardedSampleReader
from tests.export.conftest import IDS, build, spec, stage


@pytest.mark.parametrize("codec", [CodecSpec(), CodecSpec("zstd", 3), CodecSpec("none")])
def test_reader_equals_zarr(tmp_path: Path, codec: CodecSpec) -> None:
    out = stage(tmp_path)
    build(out, spec=spec(codec=codec))
    for group in ("s2_l2a", "s1_rtc"):
        z = zarr.open_array(out / "dataset.zarr", path=f"{group}/bands", mode="r")
        r = ShardedSampleReader(out / "dataset.zarr", group)
        assert len(r) == len(IDS) == z.shape[0]
        for i in range(len(r)):
            np.testing.assert_array_equal(r[i], z[i])
        np.testing.assert_array_equal(r.read(5, [3, 1]), z[5][[3, 1]])
        with pytest.raises(IndexError):
            r[len(r)]
        r.close()


def test_reader_catches_a_corrupted_chunk(tmp_path: Path) -> None:
    out = stage(tmp_path)
    build(out)
    shard = out / "dataset.zarr" / "s2_l2a" / "bands" / "c" / "0" / "0" / "0" / "0" / "0"
    spare = tmp_path / "shard.bak"
    shutil.copyfile(shard, spare)
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF  # inside the first chunk's bytes
    shard.write_bytes(bytes(data))
    r = ShardedSampleReader(out / "dataset.zarr", "s2_l2a")
    with pytest.raises(OSError, match="CRC32C"):
        for i in range(8):
            r[i]
