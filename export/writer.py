"""Write one shard: one task, whole shards only, visible only when complete.

The write's alignment is checked first. For the codec chains this project creates, the shard is streamed to
a temporary file by :mod:`export.stream` (bytes identical to Zarr's); for any other chain Zarr encodes the
whole block in memory through a store wrapper that captures the write and refuses anything but this one
shard. Either way the file is fsynced and renamed into place, so a reader never sees a partly written shard
file. The shard counts as finished when its marker ``dataset.state/<shard>.json`` exists (written last, the
same way); a rerun keeps finished shards whose shard key is unchanged and rewrites the others.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.abc.store import ByteRequest
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import LocalStore, WrapperStore

from export import stats as st
from export.checksum import crc32c
from export.layout import BANDS, ShardSpan, bands_shard_key, check_aligned
from export.model import ExportSpec
from export.shardcodec import ShardFormat, shard_format
from export.staging_io import read_block
from export.stream import TMP, can_stream, stream_shard


@dataclass(frozen=True)
class ShardJob:
    """Everything one shard task needs (small: paths and ids, never pixel data)."""

    store: str
    state: str
    span: ShardSpan
    n_samples: int
    folders: tuple[str, ...]
    location_ids: tuple[int, ...]
    key: str
    spec: ExportSpec


@dataclass(frozen=True)
class ShardResult:
    index: int
    key: str
    crc32c: dict[str, int]
    """CRC32C of the ``bands`` shard file, per product."""
    stats: dict[str, st.Partial]
    nbytes_raw: int
    nbytes_stored: int
    written: bool
    """False when the shard was already finished and was kept."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Where the task's time went: read and stats (on the read thread), wait (for the read thread), encode, write
    (empty for a kept shard)."""


class RefusedWrite(RuntimeError):
    """Zarr tried something other than writing whole shards (a bug: alignment is checked before writing)."""


class _Capture(WrapperStore[LocalStore]):
    """Collects the bytes Zarr writes, and answers 'absent' for the shard being replaced (no read-modify-write)."""

    def __init__(self, store: LocalStore, allowed: str) -> None:
        super().__init__(store)
        self.allowed = allowed
        self.captured: dict[str, np.ndarray] = {}

    def _with_store(self, store: LocalStore) -> _Capture:
        return _Capture(store, self.allowed)

    async def get(self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None) -> Buffer | None:
        if key == self.allowed:
            return None  # the whole shard is replaced: never read the old one
        if key.rsplit("/", 1)[-1] in ("zarr.json", ".zarray", ".zattrs", ".zgroup"):
            return await self._store.get(key, prototype, byte_range)
        raise RefusedWrite(f"refusing to read {key!r} while writing shard {self.allowed!r}")

    async def set(self, key: str, value: Buffer) -> None:
        if key != self.allowed:
            raise RefusedWrite(f"refusing to write {key!r}; this task may only write {self.allowed!r}")
        data = value.as_numpy_array().view(np.uint8).reshape(-1)  # a read-only view: no copy of the shard
        data.flags.writeable = False
        self.captured[key] = data

    async def delete(self, key: str) -> None:
        raise RefusedWrite(f"refusing to delete {key!r} while writing shard {self.allowed!r}")


def marker_path(state: Path, index: int) -> Path:
    return Path(state) / f"{index:06d}.json"


def read_marker(state: Path, index: int) -> dict[str, Any] | None:
    p = marker_path(state, index)
    try:
        return json.loads(p.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def load_result(job: ShardJob) -> ShardResult | None:
    """The result of a finished shard with the same key, or None if it has to be (re)written."""
    m = read_marker(Path(job.state), job.span.index)
    if not m or m.get("key") != job.key:
        return None
    store = Path(job.store)
    sizes = m.get("sizes", {})
    for name in m["crc32c"]:
        try:  # a shard file gone, or cut short or replaced since (a full disk, a copy gone wrong): rewrite it
            size = (store / bands_shard_key(name, job.span.index)).stat().st_size
        except FileNotFoundError:
            return None
        if size != sizes.get(name, size):
            return None
    with np.load(Path(job.state) / m["stats"], allow_pickle=False) as z:
        partials = {name: st.from_arrays({k[len(name) + 1:]: z[k] for k in z.files if k.startswith(name + ".")})
                    for name in m["crc32c"]}
    return ShardResult(job.span.index, job.key, {k: int(v) for k, v in m["crc32c"].items()}, partials,
                       int(m["nbytes_raw"]), int(m["nbytes_stored"]), written=False)


def write_shard(job: ShardJob) -> ShardResult:
    """Write (or keep) shard ``job.span`` of every product; a Dask task."""
    kept = load_result(job)
    if kept is not None:
        return kept
    span = check_aligned(job.span.start, job.span.stop, job.n_samples, job.spec.shard_size)
    if span != job.span or len(job.folders) != span.size:
        raise ValueError(f"job for shard {job.span} carries {len(job.folders)} folders; rebuild the plan")
    store = Path(job.store)
    marker_path(job.state, span.index).unlink(missing_ok=True)
    crcs: dict[str, int] = {}
    sizes: dict[str, int] = {}
    partials: dict[str, st.Partial] = {}
    raw = stored = 0
    secs = dict.fromkeys(("read", "stats", "wait", "encode", "write"), 0.0)
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        secs[name] += now - clock
        clock = now

    for layout in job.spec.products:
        key = bands_shard_key(layout.name, span.index)
        fmt = _format(store, f"{layout.name}/{BANDS}", span)
        if fmt is not None and can_stream(fmt):
            lap("read")
            got = stream_shard(fmt, job.folders, layout, job.spec.n_times, job.spec.stats_stride, store / key, secs)
            clock = time.perf_counter()
            crcs[layout.name], partials[layout.name] = got.crc32c, got.partial
            sizes[layout.name] = got.nbytes
            raw += got.nbytes_raw
            stored += got.nbytes
            continue
        block = np.empty((span.size, job.spec.n_times, *layout.sample_shape), dtype=layout.dtype)
        read_block(job.folders, layout.name, block)
        lap("read")
        partials[layout.name] = st.partial_of(block, layout.nodata, job.spec.stats_stride)
        lap("stats")
        parts = encode_shard(store, f"{layout.name}/{BANDS}", key, span, block)
        lap("encode")
        atomic_write(store / key, parts)
        crc = 0
        for part in parts:
            crc = crc32c(part, crc)
        crcs[layout.name] = crc
        sizes[layout.name] = sum(len(p) if isinstance(p, bytes) else p.nbytes for p in parts)
        stored += sizes[layout.name]
        lap("write")
        raw += block.nbytes
        del block
    stats_name = f"{span.index:06d}.stats.npz"
    arrays = {f"{name}.{k}": v for name, p in partials.items() for k, v in st.to_arrays(p).items()}
    atomic_write(Path(job.state) / stats_name, _npz_bytes(arrays))
    marker = {"shard": span.index, "start": span.start, "stop": span.stop, "key": job.key,
              "location_ids": list(job.location_ids), "crc32c": crcs, "sizes": sizes, "stats": stats_name,
              "nbytes_raw": raw, "nbytes_stored": stored}
    atomic_write(marker_path(job.state, span.index), json.dumps(marker, sort_keys=True).encode())
    return ShardResult(span.index, job.key, crcs, partials, raw, stored, written=True, seconds=secs)


def _format(store: Path, array_path: str, span: ShardSpan) -> ShardFormat | None:
    """The array's shard format for the direct encoder (None: let Zarr encode); checks the write's alignment."""
    arr = zarr.open_array(LocalStore(store, read_only=True), path=array_path, mode="r", zarr_format=3)
    check_aligned(span.start, span.stop, arr.shape[0], arr.shards[0] if arr.shards else arr.chunks[0])
    return shard_format(arr.metadata)


def encode_shard(store: Path, array_path: str, key: str, span: ShardSpan, block: np.ndarray) -> list[Any]:
    """The bytes of one whole ``bands`` shard, as parts to concatenate; nothing is written.

    Encoded by :mod:`export.shardcodec` when it reproduces the array's codec chain exactly, else by Zarr
    itself through a store wrapper that captures the write and refuses anything but this one shard.
    """
    cap = _Capture(LocalStore(store), key)
    arr = zarr.open_array(cap, path=array_path, mode="r+", zarr_format=3)
    check_aligned(span.start, span.stop, arr.shape[0], arr.shards[0] if arr.shards else arr.chunks[0])
    if bands_shard_key(array_path.split("/")[0], span.start // (arr.shards or arr.chunks)[0]) != key:
        raise RefusedWrite(f"shard {key!r} does not hold samples [{span.start}, {span.stop}) of {array_path}")
    fmt = shard_format(arr.metadata)
    if fmt is not None:
        return fmt.encode(np.ascontiguousarray(block))
    # write_empty_chunks: every chunk is stored (and zarr skips its all-fill-value test of each chunk)
    arr = arr.with_config({"write_empty_chunks": True})
    arr[span.start : span.stop] = block
    if set(cap.captured) != {key}:
        raise RefusedWrite(f"zarr wrote {sorted(cap.captured)} for shard {key!r}; expected exactly that key")
    return [cap.captured[key]]


def atomic_write(path: Path, data: bytes | np.ndarray | list[Any]) -> None:
    """Write ``data`` (or its parts, in order) to a temporary sibling, fsync it, rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP}{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as f:
            for part in data if isinstance(data, list) else [data]:
                f.write(part)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def remove_leftovers(paths: Iterable[Path]) -> int:
    """Delete temporary files of killed writes (ours and Zarr's ``*.partial``); returns how many."""
    n = 0
    for root in paths:
        if not Path(root).is_dir():
            continue
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                if f.startswith(TMP) or f.endswith(".partial"):
                    os.unlink(os.path.join(dirpath, f))
                    n += 1
    return n
