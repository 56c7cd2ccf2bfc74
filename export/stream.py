"""Stream one product's shard to disk: a read thread reads staged samples ahead and folds each into the
statistics while its pixels are in cache; the task's thread encodes the chunks in Zarr's order and appends them
to a temporary file, asking the kernel to start writing finished ranges; then fsync and rename into place.

Reading and statistics overlap compression, the disk overlaps both, at most a few samples are in memory instead
of the whole shard, and their buffers are reused (fresh pages cost a fault and zeroing each). The bytes are
those of :meth:`ShardFormat.encode`, which equal Zarr's own.
"""

from __future__ import annotations

import ctypes
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export import stats as st
from export.checksum import crc32c
from export.model import ProductLayout
from export.shardcodec import ShardFormat
from export.staging_io import read_sample

LOOKAHEAD = 4
"""Samples read ahead of the one being encoded."""
TMP = ".tmp-"
WRITEBACK_BYTES = 8 << 20
"""Every this many bytes written, the kernel is asked to start writing them to disk (see :func:`start_writeback`)."""


def _sync_file_range() -> Callable[[int, int, int], None] | None:
    """Linux's ``sync_file_range(fd, offset, n, SYNC_FILE_RANGE_WRITE)``: start writeback of a range, don't wait.

    Python's ``os`` has no binding, so it is called through ctypes; None where the C library lacks it (not
    Linux), and then the final fsync does all the work, as it would anyway.
    """
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError, TypeError):  # no such function, or no C library to look in (Windows)
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int

    def call(fd: int, offset: int, n: int) -> None:
        fn(fd, offset, n, 2)  # SYNC_FILE_RANGE_WRITE; a failure only means the fsync does the work later

    return call


start_writeback = _sync_file_range()
"""Begin writing a finished range of the temporary shard file while the next chunks are encoded, so the disk
works alongside the CPU and the closing fsync only waits for the tail (as RocksDB's ``bytes_per_sync``)."""


@dataclass(frozen=True)
class Streamed:
    crc32c: int
    nbytes: int
    nbytes_raw: int
    partial: st.Partial


def can_stream(fmt: ShardFormat) -> bool:
    """Streaming goes sample by sample: a chunk must hold one sample."""
    return fmt.chunk[0] == 1


def stream_shard(fmt: ShardFormat, folders: tuple[str, ...], layout: ProductLayout, n_times: int, stride: int,
                 path: Path, seconds: dict[str, float]) -> Streamed:
    """Write the shard of ``folders`` (its samples in order) to ``path``; add time spent to ``seconds``."""
    n = len(folders)
    shape = (n_times, *layout.sample_shape)
    acc = st.Accumulator(layout.dtype, len(layout.bands), layout.nodata, stride)
    chunks = list(fmt.chunks(n))
    last_use = {coords[0]: pos for pos, (coords, _) in enumerate(chunks)}
    index = fmt.new_index()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP}{path.name}-{uuid.uuid4().hex[:8]}")
    loaded: dict[int, np.ndarray] = {}
    pending: dict[int, Future[np.ndarray]] = {}
    free: list[np.ndarray] = []  # sample buffers done with, reused (fresh pages cost faults and zeroing)
    submitted = 0
    offset = crc = flushed = 0
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = seconds.get(name, 0.0) + now - clock
        clock = now

    def load(folder: str, out: np.ndarray) -> np.ndarray:
        """On the read thread: the sample, folded into the statistics while its pixels are in cache."""
        t0 = time.perf_counter()
        read_sample(folder, layout.name, out)
        t1 = time.perf_counter()
        acc.add(out)  # only this thread touches ``acc``, in sample order
        seconds["read"] = seconds.get("read", 0.0) + t1 - t0
        seconds["stats"] = seconds.get("stats", 0.0) + time.perf_counter() - t1
        return out

    try:
        with ThreadPoolExecutor(1, thread_name_prefix="ssl4eo-read") as pool, open(tmp, "wb") as f:
            for pos, (coords, sl) in enumerate(chunks):
                s = coords[0]
                if s not in loaded:
                    while submitted < min(n, s + 1 + LOOKAHEAD):
                        buf = free.pop() if free else np.empty(shape, layout.dtype)
                        pending[submitted] = pool.submit(load, folders[submitted], buf)
                        submitted += 1
                    loaded[s] = pending.pop(s).result()
                    lap("wait")
                parts = fmt.encode_chunk(loaded[s][sl[1:]])
                lap("encode")
                size = 0
                for part in parts:
                    f.write(part)
                    crc = crc32c(part, crc)
                    size += len(part)
                index[coords] = (offset, size)
                offset += size
                if start_writeback is not None and offset - flushed >= WRITEBACK_BYTES:
                    f.flush()
                    start_writeback(f.fileno(), flushed, offset - flushed)
                    flushed = offset
                if last_use[s] == pos:
                    free.append(loaded.pop(s))
                lap("write")
            tail = fmt.index_part(index)
            f.write(tail)
            crc = crc32c(tail, crc)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        lap("write")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    raw = n * int(np.prod(shape)) * np.dtype(layout.dtype).itemsize
    return Streamed(crc, offset + len(tail), raw, acc.result())
