"""The direct shard encoder writes exactly the bytes Zarr itself would, for every codec chain we create."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from export.codecs import CodecSpec
from export.layout import ShardSpan, bands_shard_key
from export.shardcodec import shard_format
from export.writer import _Capture


@pytest.mark.parametrize("codec", [
    CodecSpec(), CodecSpec("blosc-lz4", 5, "shuffle"), CodecSpec("blosc-zstd", 3, "bitshuffle"),
    CodecSpec("zstd", 3), CodecSpec("none"), CodecSpec("blosc-lz4", 5, "noshuffle", checksum=False),
])
@pytest.mark.parametrize("dtype", ["uint16", "float32", "int16"])
def test_fast_encoder_matches_zarr_byte_for_byte(tmp_path: Path, codec: CodecSpec, dtype: str) -> None:
    n, shard = 11, 4  # three shards, the last one short
    shape = (n, 4, 3, 8, 8)
    rng = np.random.default_rng(0)
    data = (rng.normal(1000, 50, size=shape)).astype(dtype)
    arr = zarr.create_array(zarr.storage.LocalStore(tmp_path), name="g/bands", shape=shape, dtype=dtype,
                            chunks=(1, 1, 3, 8, 8), shards=(shard, 4, 3, 8, 8),
                            compressors=codec.zarr_compressors(), fill_value=0)
    fmt = shard_format(arr.metadata)
    assert fmt is not None
    for k, start in enumerate(range(0, n, shard)):
        stop = min(start + shard, n)
        key = bands_shard_key("g", k)
        cap = _Capture(zarr.storage.LocalStore(tmp_path), key)
        zarr.open_array(cap, path="g/bands", mode="r+").with_config({"write_empty_chunks": True})[start:stop] = \
            data[start:stop]
        ours = b"".join(fmt.encode(np.ascontiguousarray(data[start:stop])))
        assert ours == cap.captured[key].tobytes(), f"shard {k} ({ShardSpan(k, start, stop)})"
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_bytes(ours)
    np.testing.assert_array_equal(zarr.open_array(tmp_path, path="g/bands", mode="r")[...], data)


def test_unknown_chains_fall_back_to_zarr(tmp_path: Path) -> None:
    plain = zarr.create_array(tmp_path, name="a", shape=(4, 4), dtype="uint16", chunks=(2, 2))
    assert shard_format(plain.metadata) is None  # not sharded
    from zarr.codecs import GzipCodec

    gz = zarr.create_array(tmp_path, name="b", shape=(4, 4), dtype="uint16", chunks=(2, 2), shards=(4, 4),
                           compressors=[GzipCodec()])
    assert shard_format(gz.metadata) is None


@pytest.mark.parametrize("shard_size", [8, 16])
def test_stage_output_is_the_same_through_zarrs_own_encoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            shard_size: int) -> None:
    """Streamed shards (read-ahead, statistics on the read thread, sample buffers reused once a shard holds more
    samples than are in flight, as with 16) equal Zarr's encoding of the whole block, statistics included."""
    from tests.export.conftest import build, spec, stage
    from tests.export.test_atomic import tree_digest_no_catalog

    ids = list(range(1, 21))
    fast = stage(tmp_path / "fast", ids)
    build(fast, spec=spec(shard_size))
    import export.writer

    monkeypatch.setattr(export.writer, "shard_format", lambda metadata: None)  # every shard through zarr
    slow = stage(tmp_path / "slow", ids)
    build(slow, spec=spec(shard_size))
    assert tree_digest_no_catalog(fast) == tree_digest_no_catalog(slow)
