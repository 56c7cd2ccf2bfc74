"""A fast random-access reader of one sample from the sharded ``bands`` arrays, for training loops.

Standalone on purpose (numpy, numcodecs, google-crc32c and the store's own ``zarr.json``; no curation code), so a
training job can use it as is. It reads what Zarr wrote, without Zarr's per-read machinery: the shard index of
each shard file is read once and cached, then a season chunk is one ``pread``, a CRC32C check and a decode
straight into the output array (or, when another dtype is asked for, into a reused
cache-sized buffer that is converted on the way out, while it is still in cache). With ``threads`` > 1 the
season chunks of a sample decode in parallel (Blosc and Zstd release the GIL).
``tests/export/test_reader.py`` checks it returns exactly what ``zarr`` returns. It reads the chains this project
writes (sharding_indexed, index at the end, little-endian bytes, then Blosc or Zstd or nothing, then optionally
CRC32C) and says so plainly for any other.

A reader can be pickled (it travels as its arguments) and used after ``fork`` (a DataLoader's workers): file
descriptors and threads are per process.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np

_EMPTY = 2**64 - 1
Decoder = Callable[[bytes, np.ndarray], None]


class ShardedSampleReader:
    """``reader[i]`` -> (time, band, y, x) of sample ``i``; ``reader.read(i, seasons, dtype=...)`` for more."""

    def __init__(self, store: str | os.PathLike[str], group: str, array: str = "bands", *, threads: int = 1) -> None:
        self._args = (str(store), group, array, threads)
        self.path = Path(store) / group / array
        meta = json.loads((self.path / "zarr.json").read_text())
        self.shape = tuple(meta["shape"])
        self.dtype = np.dtype(meta["data_type"]).newbyteorder("<")
        self.shard = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
        self._sep = meta.get("chunk_key_encoding", {}).get("configuration", {}).get("separator", "/")
        codecs = meta["codecs"]
        if len(codecs) != 1 or codecs[0]["name"] != "sharding_indexed":
            raise ValueError(f"{self.path}: not a sharded array this reader knows; open it with zarr instead")
        conf = codecs[0]["configuration"]
        if conf.get("index_location", "end") != "end":
            raise ValueError(f"{self.path}: shard index at the start is not supported; open it with zarr instead")
        self.chunk = tuple(conf["chunk_shape"])
        if self.chunk[0] != 1 or self.chunk[2:] != self.shape[2:] or self.chunk[1] not in (1, self.shape[1]):
            raise ValueError(f"{self.path}: chunks {self.chunk} are not one sample(-season) each")
        self.per_shard = tuple(s // c for s, c in zip(self.shard, self.chunk, strict=True))
        self._decode, self._crc = _inner_chain(conf["codecs"], self.path)
        self._plain = self._decode is _copy  # no compressor: the stored bytes are the array
        self._index_crc = [c["name"] for c in conf.get("index_codecs", [])] == ["bytes", "crc32c"]
        if threads < 1:
            raise ValueError(f"threads={threads}; use 1 or more")
        self.threads = threads
        self._fresh_process_state()

    def _fresh_process_state(self) -> None:
        self._pid = os.getpid()
        self._indexes: dict[int, tuple[int, np.ndarray]] = {}
        self._lock = threading.Lock()
        self._tls = threading.local()
        self._pool: ThreadPoolExecutor | None = None

    def __getstate__(self) -> tuple[Any, ...]:
        return self._args

    def __setstate__(self, args: tuple[Any, ...]) -> None:
        store, group, array, threads = args
        self.__init__(store, group, array, threads=threads)  # type: ignore[misc]

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, i: int) -> np.ndarray:
        return self.read(i)

    def read(self, i: int, seasons: Sequence[int] | None = None, *, dtype: Any = None,
             out: np.ndarray | None = None) -> np.ndarray:
        """Sample ``i`` as (season, band, y, x): all seasons or ``seasons`` in that order, in the stored dtype or
        ``dtype`` (e.g. ``np.float32``, converted chunk by chunk), into ``out`` when given."""
        if not 0 <= i < self.shape[0]:
            raise IndexError(f"sample {i} out of range 0..{self.shape[0] - 1}")
        seasons = list(range(self.shape[1]) if seasons is None else seasons)
        if any(not 0 <= t < self.shape[1] for t in seasons):
            raise IndexError(f"seasons {seasons} out of range 0..{self.shape[1] - 1}")
        shape = (len(seasons), *self.shape[2:])
        dt = self.dtype if dtype is None else np.dtype(dtype)
        if out is None:
            out = np.empty(shape, dt)
        elif out.shape != shape or not out.flags.c_contiguous:
            raise ValueError(f"out has shape {out.shape}; expected a C-contiguous array of shape {shape}")
        if os.getpid() != self._pid:  # forked (a DataLoader worker): own descriptors, lock and threads
            self._fresh_process_state()
        s, j = divmod(i, self.shard[0])
        fd, index = self._shard(s)
        if self.chunk[1] > 1:  # one chunk holds the whole sample
            whole = self._chunk(fd, index[j, 0], i, 0, self._scratch("sample", self.chunk[1:]))
            out[...] = whole[seasons]
            return out
        jobs = list(enumerate(seasons))
        if self.threads > 1 and len(jobs) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="ssl4eo-reader")
            list(self._pool.map(lambda kt: self._into(fd, index, i, kt[1], out[kt[0]]), jobs))
        else:
            for k, t in jobs:
                self._into(fd, index, i, t, out[k])
        return out

    def _into(self, fd: int, index: np.ndarray, i: int, t: int, dst: np.ndarray) -> None:
        j = i % self.shard[0]
        if dst.dtype == self.dtype or self._plain:  # a plain chunk converts straight from the bytes read
            self._chunk(fd, index[j, t], i, t, dst)
        else:  # decode into a cache-sized buffer, convert while it is hot
            dst[...] = self._chunk(fd, index[j, t], i, t, self._scratch("chunk", self.chunk[2:]))

    def _chunk(self, fd: int, entry: np.ndarray, i: int, t: int, dst: np.ndarray) -> np.ndarray:
        off, size = int(entry[0]), int(entry[1])
        if off == _EMPTY:
            dst[...] = 0  # never written: the fill value
            return dst
        # payload and CRC read apart: google-crc32c takes only bytes, and slicing one read would copy the chunk
        n = size - 4 if self._crc else size
        payload = os.pread(fd, n, off)
        if len(payload) != n:
            raise OSError(f"{self.path}: chunk of sample {i} season {t} is cut short (truncated shard)")
        if self._crc and google_crc32c.value(payload) != int.from_bytes(os.pread(fd, 4, off + n), "little"):
            raise OSError(f"{self.path}: chunk of sample {i} season {t} fails its CRC32C (corrupt shard)")
        if self._plain and dst.dtype != self.dtype:
            if len(payload) != dst.size * self.dtype.itemsize:
                raise OSError(f"{self.path}: chunk of sample {i} season {t} has {len(payload)} bytes, expected "
                              f"{dst.size * self.dtype.itemsize} (corrupt shard)")
            np.copyto(dst, np.frombuffer(payload, self.dtype).reshape(dst.shape), casting="unsafe")
            return dst
        try:
            self._decode(payload, dst)
        except (ValueError, RuntimeError) as e:
            raise OSError(f"{self.path}: chunk of sample {i} season {t} does not decode ({e})") from None
        return dst

    def _scratch(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        arr = getattr(self._tls, name, None)
        if arr is None:
            arr = np.empty(shape, self.dtype)
            setattr(self._tls, name, arr)
        return arr

    def _shard(self, s: int) -> tuple[int, np.ndarray]:
        got = self._indexes.get(s)
        if got is not None:
            return got
        with self._lock:
            got = self._indexes.get(s)
            if got is None:
                key = self._sep.join(["c", str(s)] + ["0"] * (len(self.shape) - 1))
                fd = os.open(self.path / key, os.O_RDONLY)
                n = int(np.prod(self.per_shard)) * 16
                extra = 4 if self._index_crc else 0
                size = os.fstat(fd).st_size
                if size < n + extra:
                    os.close(fd)
                    raise OSError(f"{self.path / key}: shorter than its index (truncated shard)")
                tail = os.pread(fd, n + extra, size - n - extra)
                if self._index_crc and google_crc32c.value(tail[:n]) != int.from_bytes(tail[n:], "little"):
                    os.close(fd)
                    raise OSError(f"{self.path / key}: shard index fails its CRC32C (corrupt shard)")
                got = (fd, np.frombuffer(tail[:n], dtype="<u8").reshape(*self.per_shard, 2)[:, :, 0, 0, 0])
                self._indexes[s] = got
        return got

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if os.getpid() == self._pid:
            for fd, _ in self._indexes.values():
                os.close(fd)
        self._indexes.clear()


def _inner_chain(codecs: list[dict], path: Path) -> tuple[Decoder, bool]:
    names = [c["name"] for c in codecs]
    crc = bool(names) and names[-1] == "crc32c"
    names = names[:-1] if crc else names
    if not names or names[0] != "bytes" or codecs[0].get("configuration", {}).get("endian", "little") != "little":
        raise ValueError(f"{path}: codec chain {names} is not one this reader knows; open it with zarr instead")
    if names[1:] == []:
        return _copy, crc
    if names[1:] == ["blosc"]:
        from numcodecs import blosc

        def _blosc(src: bytes, dst: np.ndarray) -> None:
            nbytes = int.from_bytes(src[4:8], "little")  # Blosc's header: uncompressed size at bytes 4-7
            if nbytes != dst.nbytes:
                raise ValueError(f"{nbytes} bytes for a chunk of {dst.nbytes}")
            blosc.decompress(src, dst)

        return _blosc, crc
    if names[1:] == ["zstd"]:
        from numcodecs import Zstd

        zstd = Zstd()

        def _zstd(src: bytes, dst: np.ndarray) -> None:
            _copy(memoryview(zstd.decode(src)), dst)

        return _zstd, crc
    raise ValueError(f"{path}: codec chain {names} is not one this reader knows; open it with zarr instead")


def _copy(src: bytes | memoryview, dst: np.ndarray) -> None:
    if len(src) != dst.nbytes:
        raise ValueError(f"{len(src)} bytes for a chunk of {dst.nbytes}")
    dst.reshape(-1).view(np.uint8)[:] = np.frombuffer(src, np.uint8)

