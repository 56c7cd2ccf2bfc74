"""The formats the export bench compares the store with, each written from the same staged samples and read
back as one float32 (season, band, y, x) sample: the training reader, zarr's own indexing, the SSL4EO-S12 v1
GeoTIFF layout and SSL4EO's LMDB of pickles."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

ALL_SEASONS = (0, 1, 2, 3)


def steady_allocator() -> bool:
    """Serve allocations up to 32 MiB from glibc's heap and never trim it, for the read measurements.

    Every format allocates its output (13 MB of float32) and LMDB two 6.7 MB byte strings on each read. Whether
    glibc hands those out from its heap or from fresh ``mmap`` s (3,300 page faults per read, several ms on this
    VM) depends on the process's history through glibc's adaptive threshold: the same LMDB read measured 1.9 or
    6.7 ms. Fixed here, every format is measured at the steady state of a long-running DataLoader worker.
    Returns False where the C library is not glibc (the measurement then runs with the allocator as it is)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 1 << 30))


def write_geotiffs(root: Path, folders: list[Path], layout: Any) -> Path:
    """SSL4EO-S12 v1 layout: ``<location>/<scene>/<band>.tif``, deflate with horizontal predictor."""
    import rasterio
    from rasterio.transform import Affine

    from pipeline.staging import read_array, read_meta

    for f in folders:
        meta = read_meta(f)
        arr = read_array(f, "s2_l2a", mmap=False)
        p = meta.products["s2_l2a"]
        for t, season in enumerate(p.seasons):
            d = root / f.name / season.scene_id
            d.mkdir(parents=True, exist_ok=True)
            for b, band in enumerate(p.bands):
                with rasterio.open(d / f"{band}.tif", "w", driver="GTiff", width=p.patch_px, height=p.patch_px,
                                   count=1, dtype=arr.dtype, crs=f"EPSG:{meta.epsg}",
                                   transform=Affine(*p.transform), compress="deflate", predictor=2) as dst:
                    dst.write(arr[t, b], 1)
    return root


def write_lmdb(path: Path, folders: list[Path]) -> Path:
    """SSL4EO's training LMDB: key str(index), value pickle.dumps((array bytes, shape))."""
    import lmdb

    from pipeline.staging import read_array

    env = lmdb.open(str(path), map_size=1 << 34)
    with env.begin(write=True) as txn:
        for i, f in enumerate(folders):
            a = read_array(f, "s2_l2a", mmap=False)
            txn.put(str(i).encode(), pickle.dumps((a.tobytes(), a.shape, str(a.dtype))))
    env.close()
    return path


def fast_reader(out: Path, threads: int = 1):  # type: ignore[no-untyped-def]
    from export.reader import ShardedSampleReader

    r = ShardedSampleReader(out / "dataset.zarr", "s2_l2a", threads=threads)

    def read(i: int, seasons: tuple[int, ...]) -> np.ndarray:
        return r.read(i, None if seasons == ALL_SEASONS else seasons, dtype=np.float32)

    read.close = r.close  # type: ignore[attr-defined]
    return read


def zarr_reader(out: Path):  # type: ignore[no-untyped-def]
    import zarr

    arr = zarr.open_array(out / "dataset.zarr", path="s2_l2a/bands", mode="r")

    def read(i: int, seasons: tuple[int, ...]) -> np.ndarray:
        if seasons == ALL_SEASONS:
            return arr[i].astype(np.float32)
        # One basic selection per season: only those chunks decode. (zarr 3.1's oindex on a sharded array is
        # ~10x slower than reading the whole sample.)
        return np.stack([arr[i, t] for t in seasons]).astype(np.float32)

    return read


def tiff_reader(root: Path, layout: Any):  # type: ignore[no-untyped-def]
    import rasterio

    locs = sorted(root.iterdir())

    def read(i: int, seasons: tuple[int, ...]) -> np.ndarray:
        scenes = sorted(locs[i].iterdir())
        out = np.empty((len(seasons), len(layout.bands), layout.patch_px, layout.patch_px), np.float32)
        for k, t in enumerate(seasons):
            for b, band in enumerate(layout.bands):
                with rasterio.open(scenes[t] / f"{band}.tif") as src:
                    out[k, b] = src.read(1)
        return out

    return read


def lmdb_reader(path: Path):  # type: ignore[no-untyped-def]
    import lmdb

    env = lmdb.open(str(path), readonly=True, lock=False, readahead=False)  # as SSL4EO's dataset opens it

    def read(i: int, seasons: tuple[int, ...]) -> np.ndarray:
        with env.begin() as txn:
            buf, shape, dtype = pickle.loads(txn.get(str(i).encode()))
        arr = np.frombuffer(buf, dtype=dtype).reshape(shape)  # the value holds all four seasons
        return (arr if seasons == ALL_SEASONS else arr[list(seasons)]).astype(np.float32)

    read.close = env.close  # type: ignore[attr-defined]
    return read
