"""The training read path returns exactly what zarr returns, for every codec we write, and catches corruption."""

from __future__ import annotations

import os
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
    r.close()


@pytest.mark.parametrize(("codec", "threads"), [(CodecSpec(), 1), (CodecSpec(), 3), (CodecSpec("none"), 1)])
def test_reader_converts_reuses_out_and_decodes_seasons_in_parallel(tmp_path: Path, codec: CodecSpec,
                                                                    threads: int) -> None:
    out = stage(tmp_path)
    build(out, spec=spec(codec=codec))
    z = zarr.open_array(out / "dataset.zarr", path="s2_l2a/bands", mode="r")
    r = ShardedSampleReader(out / "dataset.zarr", "s2_l2a", threads=threads)
    buf = np.full((2, *z.shape[2:]), np.nan, np.float32)
    for i in range(len(r)):
        got = r.read(i, dtype=np.float32)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, z[i].astype(np.float32))
        same = r.read(i, [2, 0], dtype=np.float32, out=buf)
        assert same is buf
        np.testing.assert_array_equal(buf, z[i][[2, 0]].astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        r.read(0, [1], out=buf)
    with pytest.raises(IndexError, match="seasons"):
        r.read(0, [4])
    r.close()


def test_reader_pickles_and_works_in_a_forked_worker(tmp_path: Path) -> None:
    """As a DataLoader uses it: pickled to spawned workers, or inherited by forked ones after reads in the parent."""
    import multiprocessing as mp
    import pickle

    out = stage(tmp_path)
    build(out)
    z = zarr.open_array(out / "dataset.zarr", path="s2_l2a/bands", mode="r")
    r = ShardedSampleReader(out / "dataset.zarr", "s2_l2a", threads=2)
    r.read(3)  # descriptors, index cache and threads now exist in this process
    clone = pickle.loads(pickle.dumps(r))
    np.testing.assert_array_equal(clone[9], z[9])
    clone.close()
    _FORKED["reader"] = r  # inherited by the forked worker as it is (descriptors, lock, thread pool and all)
    try:
        with mp.get_context("fork").Pool(1) as pool:
            sums = pool.map(_sample_sum, [3, 9, 17])
    finally:
        _FORKED.clear()
    assert sums == [(k == 0, int(z[i].astype(np.int64).sum())) for k, i in enumerate((3, 9, 17))]
    np.testing.assert_array_equal(r[3], z[3])  # the parent's reader is untouched
    r.close()


_FORKED: dict[str, ShardedSampleReader] = {}


def _sample_sum(i: int) -> tuple[bool, int]:
    r = _FORKED["reader"]
    inherited = r._pid != os.getpid()  # the parent's object as it was, until its first read here
    return inherited, int(r.read(i).astype(np.int64).sum())


def test_reader_reports_a_truncated_shard(tmp_path: Path) -> None:
    out = stage(tmp_path)
    build(out)
    shard = out / "dataset.zarr" / "s2_l2a" / "bands" / "c" / "0" / "0" / "0" / "0" / "0"
    shard.write_bytes(shard.read_bytes()[:64])
    with pytest.raises(OSError, match="truncated shard"):
        ShardedSampleReader(out / "dataset.zarr", "s2_l2a")[0]


def test_reader_without_the_crc32c_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A training job that copies the reader into an environment with only google-crc32c gets the same results."""
    import export.reader

    monkeypatch.setattr(export.reader, "_crc_buffer", None)
    out = stage(tmp_path)
    build(out)
    z = zarr.open_array(out / "dataset.zarr", path="s2_l2a/bands", mode="r")
    r = ShardedSampleReader(out / "dataset.zarr", "s2_l2a")
    for i in (0, 7, 19):
        np.testing.assert_array_equal(r.read(i, dtype=np.float32), z[i].astype(np.float32))
    r.close()
    shard = out / "dataset.zarr" / "s2_l2a" / "bands" / "c" / "0" / "0" / "0" / "0" / "0"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(OSError, match="CRC32C"):
        for i in range(8):
            ShardedSampleReader(out / "dataset.zarr", "s2_l2a")[i]


@pytest.mark.parametrize(("dtype", "fill"), [("int16", -32768), ("float32", float("nan")), ("uint16", 0)])
def test_reader_gives_the_fill_value_where_zarr_wrote_nothing(tmp_path: Path, dtype: str, fill: float) -> None:
    """A store written by plain zarr (write_empty_chunks=False): all-fill chunks and a whole shard are never
    written, and read back as the array's fill value (EnMAP's -32768, SAR's NaN), exactly as zarr reads them."""
    from zarr.codecs import BloscCodec, Crc32cCodec

    shape = (6, 4, 3, 8, 8)  # 3 shards of 2 samples
    arr = zarr.create_array(tmp_path / "s.zarr", name="p/bands", shape=shape, chunks=(1, 1, 3, 8, 8),
                            shards=(2, 4, 3, 8, 8), dtype=dtype, fill_value=fill,
                            compressors=[BloscCodec(cname="lz4", shuffle="bitshuffle"), Crc32cCodec()],
                            config={"write_empty_chunks": False})
    data = np.full(shape, fill, dtype)
    data[0, 1] = 7  # sample 0: season 1 written, the other seasons all fill; sample 1 all fill
    data[4, :, 0, 2, 3] = 9  # shard 1 (samples 2, 3) never written at all; shard 2 partly
    arr[:] = data
    assert not (tmp_path / "s.zarr" / "p" / "bands" / "c" / "1").exists()
    r = ShardedSampleReader(tmp_path / "s.zarr", "p")
    for i in range(shape[0]):
        np.testing.assert_array_equal(r.read(i), arr[i])
        np.testing.assert_array_equal(r.read(i, [3, 1], dtype=np.float64), arr[i, [3, 1]].astype(np.float64))
    r.close()


def test_reader_refuses_shards_that_split_a_sample(tmp_path: Path) -> None:
    zarr.create_array(tmp_path / "s.zarr", name="p/bands", shape=(4, 4, 3, 8, 8), chunks=(1, 1, 3, 8, 8),
                      shards=(2, 2, 3, 8, 8), dtype="uint16")
    with pytest.raises(ValueError, match="split a sample; open it with zarr instead"):
        ShardedSampleReader(tmp_path / "s.zarr", "p")


def test_reader_without_checksums_rejects_a_damaged_blosc_header(tmp_path: Path) -> None:
    """No CRC32C to catch it first: a Blosc header that claims more compressed bytes than the chunk holds is an
    error naming the chunk, never a read past the buffer."""
    out = stage(tmp_path)
    build(out, spec=spec(codec=CodecSpec(checksum=False)))
    r = ShardedSampleReader(out / "dataset.zarr", "s2_l2a")
    off, size = (int(x) for x in r._shard(0).index[0, 0])
    r.close()
    shard = out / "dataset.zarr" / "s2_l2a" / "bands" / "c" / "0" / "0" / "0" / "0" / "0"
    data = bytearray(shard.read_bytes())
    data[off + 12: off + 16] = (size * 4).to_bytes(4, "little")  # Blosc's header: compressed size, bytes 12-15
    shard.write_bytes(bytes(data))
    r = ShardedSampleReader(out / "dataset.zarr", "s2_l2a")
    with pytest.raises(OSError, match=r"chunk of sample 0 season 0 does not decode .*not a valid Blosc buffer"):
        r.read(0, [0])
    np.testing.assert_array_equal(r.read(0, [1]), zarr.open_array(out / "dataset.zarr", path="s2_l2a/bands")[0, [1]])
    r.close()
