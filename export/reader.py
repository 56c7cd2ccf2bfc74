"""A fast random-access reader of one sample from the sharded ``bands`` arrays, for training loops.

Standalone on purpose (numpy, numcodecs, crc32c or else google-crc32c, and the store's own ``zarr.json``; no
curation code), so a training job can use it as is. It reads what Zarr wrote, without Zarr's per-read machinery:
each shard file's index is read once and the file mapped, then a season chunk is checked (CRC32C) and decoded in
place, straight into the output array (or, when another dtype is asked for, into a reused cache-sized buffer
that is converted on the way out, while it is still in cache): no copy of the stored bytes. With ``threads`` > 1
the season chunks of a sample decode in parallel (Blosc and Zstd release the GIL). Without the crc32c package
(google-crc32c checks only ``bytes``) chunks are read with ``pread`` instead of mapped.
``tests/export/test_reader.py`` checks it returns exactly what ``zarr`` returns. It reads the chains this project
writes (sharding_indexed, index at the end, little-endian bytes, then Blosc or Zstd or nothing, then optionally
CRC32C) and says so plainly for any other.

A reader can be pickled (it travels as its arguments) and used after ``fork`` (a DataLoader's workers): file
descriptors, mappings and threads are per process.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:  # CRC32C on any buffer at ~25 GB/s; google-crc32c (Zarr's own dependency) takes only bytes, at ~4.6 GB/s
    from crc32c import crc32c as _crc_buffer
except ImportError:  # pragma: no cover - exercised by copies of this file in environments without crc32c
    _crc_buffer = None

_EMPTY = 2**64 - 1
_WILLNEED = getattr(mmap, "MADV_WILLNEED", None)  # absent where the OS has no madvise (Windows)
Decoder = Callable[[bytes | memoryview, np.ndarray], None]


class ShardedSampleReader:
    """``reader[i]`` -> (time, band, y, x) of sample ``i``; ``reader.read(i, seasons, dtype=...)`` for more."""

    def __init__(self, store: str | os.PathLike[str], group: str, array: str = "bands", *, threads: int = 1) -> None:
        self._args = (str(store), group, array, threads)
        self.path = Path(store) / group / array
        meta = json.loads((self.path / "zarr.json").read_text())
        self.shape = tuple(meta["shape"])
        self.dtype = np.dtype(meta["data_type"]).newbyteorder("<")
        self.shard = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
        self.fill_value = _fill_value(meta.get("fill_value", 0), self.dtype)
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
        if self.shard[1:] != self.shape[1:]:
            raise ValueError(f"{self.path}: shards {self.shard} split a sample; open it with zarr instead")
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
        self._shards: dict[int, _Shard] = {}
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
        sh = self._shard(s)
        if self.chunk[1] > 1:  # one chunk holds the whole sample
            whole = self._chunk(sh, sh.index[j, 0], i, 0, self._scratch("sample", self.chunk[1:]))
            out[...] = whole[seasons]
            return out
        jobs = list(enumerate(seasons))
        if self.threads > 1 and len(jobs) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="ssl4eo-reader")
            list(self._pool.map(lambda kt: self._into(sh, i, kt[1], out[kt[0]]), jobs))
        else:
            for k, t in jobs:
                self._into(sh, i, t, out[k])
        return out

    def _into(self, sh: _Shard, i: int, t: int, dst: np.ndarray) -> None:
        entry = sh.index[i % self.shard[0], t]
        if dst.dtype == self.dtype or self._plain:  # a plain chunk converts straight from the bytes read
            self._chunk(sh, entry, i, t, dst)
        else:  # decode into a cache-sized buffer, convert while it is hot
            dst[...] = self._chunk(sh, entry, i, t, self._scratch("chunk", self.chunk[2:]))

    def _chunk(self, sh: _Shard, entry: np.ndarray, i: int, t: int, dst: np.ndarray) -> np.ndarray:
        off, size = int(entry[0]), int(entry[1])
        if off == _EMPTY:
            dst[...] = self.fill_value  # never written (as zarr does with write_empty_chunks=False)
            return dst
        if off + size > sh.size:
            raise OSError(f"{self.path}: chunk of sample {i} season {t} lies past the end (truncated shard)")
        if sh.view is not None:  # the mapped file: checked and decoded in place, no copy
            # one readahead of the whole chunk, as pread would do, instead of a page fault per 128 KiB when cold
            if _WILLNEED is not None:
                start = off - off % mmap.PAGESIZE
                sh.view.obj.madvise(_WILLNEED, start, off + size - start)  # type: ignore[union-attr]
            raw = sh.view[off:off + size]
            payload: bytes | memoryview = raw[:-4] if self._crc else raw
            if self._crc and _crc_buffer(payload) != int.from_bytes(raw[-4:], "little"):
                raise OSError(f"{self.path}: chunk of sample {i} season {t} fails its CRC32C (corrupt shard)")
        else:  # payload and CRC read apart: google-crc32c takes only bytes, and slicing one read would copy
            n = size - 4 if self._crc else size
            payload = os.pread(sh.fd, n, off)
            if len(payload) != n:
                raise OSError(f"{self.path}: chunk of sample {i} season {t} is cut short (truncated shard)")
            if self._crc and _crc_bytes(payload) != int.from_bytes(os.pread(sh.fd, 4, off + n), "little"):
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

    def _shard(self, s: int) -> _Shard:
        got = self._shards.get(s)
        if got is not None:
            return got
        with self._lock:
            got = self._shards.get(s)
            if got is None:
                got = self._open_shard(s)
                self._shards[s] = got
        return got

    def _open_shard(self, s: int) -> _Shard:
        path = self.path / self._sep.join(["c", str(s)] + ["0"] * (len(self.shape) - 1))
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:  # a shard never written: every chunk is the fill value, as zarr reads it
            return _Shard(-1, np.full((*self.per_shard[:2], 2), _EMPTY, np.uint64), None, 0)
        try:
            n = int(np.prod(self.per_shard)) * 16
            extra = 4 if self._index_crc else 0
            size = os.fstat(fd).st_size
            if size < n + extra:
                raise OSError(f"{path}: shorter than its index (truncated shard)")
            tail = os.pread(fd, n + extra, size - n - extra)
            if self._index_crc and _crc_bytes(tail[:n]) != int.from_bytes(tail[n:], "little"):
                raise OSError(f"{path}: shard index fails its CRC32C (corrupt shard)")
            index = np.frombuffer(tail[:n], dtype="<u8").reshape(*self.per_shard, 2)[:, :, 0, 0, 0]
            # Mapped when CRC32C can be checked on the mapping itself (the crc32c package); else read with pread
            view = memoryview(mmap.mmap(fd, 0, access=mmap.ACCESS_READ)) if _crc_buffer is not None else None
        except BaseException:
            os.close(fd)
            raise
        return _Shard(fd, index, view, size)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        mine = os.getpid() == self._pid
        for sh in self._shards.values():
            if sh.view is not None:
                m = sh.view.obj
                sh.view.release()
                with contextlib.suppress(BufferError):  # a caller still holds a view; the GC unmaps it later
                    m.close()  # type: ignore[union-attr]
            if mine and sh.fd >= 0:
                os.close(sh.fd)
        self._shards.clear()


@dataclass(frozen=True)
class _Shard:
    fd: int
    index: np.ndarray
    """(sample in shard, chunk along time) -> (offset, size)."""
    view: memoryview | None
    """The whole shard file mapped read-only, or None (reads then go through pread)."""
    size: int


def _fill_value(v: Any, dtype: np.dtype) -> Any:
    """Zarr v3's JSON fill value: a number, or for floats the strings NaN / Infinity / -Infinity (or hex)."""
    if isinstance(v, str):
        if v.startswith("0x"):
            return np.frombuffer(int(v, 16).to_bytes(dtype.itemsize, "big"), dtype.newbyteorder(">"))[0]
        return dtype.type({"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}[v])
    return dtype.type(v)


def _crc_bytes(data: bytes) -> int:
    if _crc_buffer is not None:
        return int(_crc_buffer(data))
    import google_crc32c

    return int(google_crc32c.value(data))


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

        single = _blosc_single_thread()

        def _blosc(src: bytes | memoryview, dst: np.ndarray) -> None:
            nbytes = int.from_bytes(src[4:8], "little")  # Blosc's header: uncompressed size at bytes 4-7
            if nbytes != dst.nbytes:
                raise ValueError(f"{nbytes} bytes for a chunk of {dst.nbytes}")
            if single is None:
                blosc.decompress(src, dst)
            else:
                single(src, dst)

        return _blosc, crc
    if names[1:] == ["zstd"]:
        from numcodecs import Zstd

        zstd = Zstd()

        def _zstd(src: bytes | memoryview, dst: np.ndarray) -> None:
            zstd.decode(src, out=dst)  # straight into the output; a size mismatch raises

        return _zstd, crc
    raise ValueError(f"{path}: codec chain {names} is not one this reader knows; open it with zarr instead")


def _blosc_single_thread() -> Decoder | None:
    """Blosc's ``blosc_decompress_ctx`` with one thread, from the library numcodecs ships, or None.

    numcodecs decodes with Blosc's internal thread pool (and a global lock) when called from a process's main
    thread: on a 2-core machine that made a sample read 1.2x *slower* than one thread, and a reader that looks
    single-threaded would compete with a DataLoader's other workers. This reader's parallelism is its own
    (``threads``), so every chunk decodes on the calling thread, as numcodecs does in worker threads and forked
    processes anyway. Called through ctypes, which releases the GIL. None (numcodecs' own ``decompress`` then)
    where the symbols are not exported."""
    import ctypes

    from numcodecs import blosc

    try:
        lib = ctypes.CDLL(blosc.__file__)
        dec, validate = lib.blosc_decompress_ctx, lib.blosc_cbuffer_validate
    except (OSError, AttributeError):  # pragma: no cover - a numcodecs build without the exported symbols
        return None
    dec.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    dec.restype = ctypes.c_int
    validate.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
    validate.restype = ctypes.c_int

    def decode(src: bytes | memoryview, dst: np.ndarray) -> None:
        buf = np.frombuffer(src, np.uint8)  # the address of a read-only buffer (a mapped file), no copy
        n = ctypes.c_size_t(0)
        if validate(buf.ctypes.data, buf.size, ctypes.byref(n)) != 0 or n.value != dst.nbytes:
            raise ValueError("not a valid Blosc buffer (its header does not match its length)")
        if dec(buf.ctypes.data, dst.ctypes.data, dst.nbytes, 1) != dst.nbytes:
            raise ValueError("Blosc could not decompress it")

    return decode


def _copy(src: bytes | memoryview, dst: np.ndarray) -> None:
    if len(src) != dst.nbytes:
        raise ValueError(f"{len(src)} bytes for a chunk of {dst.nbytes}")
    dst.reshape(-1).view(np.uint8)[:] = np.frombuffer(src, np.uint8)

