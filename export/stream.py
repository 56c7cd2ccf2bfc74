"""Stream one product's shard to disk: read staged samples ahead on a thread, fold each into the statistics,
encode its chunks in Zarr's order and append them to a temporary file, then fsync and rename it into place.

Reading (I/O) overlaps statistics and compression (CPU), the file is written while it is encoded, and at most
a few samples are in memory instead of the whole shard. The bytes are those of :meth:`ShardFormat.encode`,
which equal Zarr's own.
"""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import google_crc32c
import numpy as np

from export import stats as st
from export.model import ProductLayout
from export.shardcodec import ShardFormat
from export.staging_io import read_sample

LOOKAHEAD = 4
"""Samples read ahead of the one being encoded."""
TMP = ".tmp-"


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
    submitted = 0
    offset = crc = 0
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = seconds.get(name, 0.0) + now - clock
        clock = now

    try:
        with ThreadPoolExecutor(1, thread_name_prefix="ssl4eo-read") as pool, open(tmp, "wb") as f:
            for pos, (coords, sl) in enumerate(chunks):
                s = coords[0]
                if s not in loaded:
                    while submitted < min(n, s + 1 + LOOKAHEAD):
                        out = np.empty(shape, layout.dtype)
                        pending[submitted] = pool.submit(read_sample, folders[submitted], layout.name, out)
                        submitted += 1
                    loaded[s] = pending.pop(s).result()
                    lap("read")
                    acc.add(loaded[s])
                    lap("stats")
                parts = fmt.encode_chunk(loaded[s][sl[1:]])
                lap("encode")
                size = 0
                for part in parts:
                    f.write(part)
                    crc = google_crc32c.extend(crc, part)
                    size += len(part)
                index[coords] = (offset, size)
                offset += size
                if last_use[s] == pos:
                    del loaded[s]
                lap("write")
            tail = fmt.index_part(index)
            f.write(tail)
            crc = google_crc32c.extend(crc, tail)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        lap("write")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    raw = n * int(np.prod(shape)) * np.dtype(layout.dtype).itemsize
    return Streamed(crc, offset + len(tail), raw, acc.result())
