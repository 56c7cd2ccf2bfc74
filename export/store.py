"""The Zarr v3 store: create groups and arrays, write the metadata arrays, and finish it (attributes, checksums,
consolidated metadata). The ``bands`` shards themselves are written by :mod:`export.writer`.

Layout (``n`` samples, ``T`` seasons, ``C`` bands, ``P`` pixels)::

    dataset.zarr/
      zarr.json                 root attributes "ssl4eo": config hash, version, creation time, products, ...
      <product>/                one group per product, same sample index in every group
        zarr.json               group attributes "ssl4eo": product metadata and normalisation "stats"
        bands                   (sample, time, band, y, x) source dtype, chunk (1,1,C,P,P), shard (S,T,C,P,P)
        sample, location_id, lon, lat, epsg          (sample,)
        transform                                    (sample, affine=6)
        datetime, scene_id, scene_href, cloud_fraction, nodata_fraction   (sample, time)
        scale, offset                                (sample, time, band) physical = bands * scale + offset
        band, center_wavelength, fwhm                (band,)
        time, season_reference                       (time,)
        shard_crc32c                                 (shard,) CRC32C of each bands shard file
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from export.columns import COORDINATES, Column, band_columns, sample_columns
from export.layout import BANDS, DIMS, n_shards
from export.model import ExportSpec, LocationRecord, ProductLayout

log = logging.getLogger(__name__)

ATTR = "ssl4eo"
META_CHUNK = 65536
"""Samples per chunk of the small metadata arrays (one file each for up to 65,536 samples)."""
META_CHUNK_BYTES = 8 << 20
"""... and at most about this many bytes a chunk (EnMAP's scale and offset: 7 KB a sample each)."""


def chunk_blocks(a: zarr.Array) -> Iterator[np.ndarray]:
    """``a`` one chunk row along its first axis at a time (a metadata array of a big corpus, without holding it)."""
    step = max(1, a.chunks[0])
    for i in range(0, a.shape[0], step):
        yield np.asarray(a[i : i + step])


def read_root_attrs(store_path: Path) -> dict[str, Any] | None:
    """The root ``ssl4eo`` attributes, or None if there is no store."""
    meta = Path(store_path) / "zarr.json"
    if not meta.is_file():
        return None
    return json.loads(meta.read_text()).get("attributes", {}).get(ATTR)


def prepare(
    store_path: Path, spec: ExportSpec, records: Sequence[LocationRecord], root_attrs: Mapping[str, Any]
) -> None:
    """Create (or bring up to date) every group and array; write the metadata arrays in full.

    Existing ``bands`` arrays keep their shards; only their sample count is adjusted. The root attributes say
    ``"status": "writing"`` until :func:`finish`.
    """
    store = zarr.storage.LocalStore(Path(store_path))
    root = zarr.open_group(store, mode="a", zarr_format=3, use_consolidated=False)
    root.attrs.put({ATTR: {**root_attrs, "status": "writing"}})
    n = len(records)
    for layout in spec.products:
        group = root.require_group(layout.name)
        _bands_array(store, layout, spec, n)
        cols = {**sample_columns(records, layout, spec), **band_columns(layout, spec)}
        for name, col in cols.items():
            _write_column(store, f"{layout.name}/{name}", col)
        _drop_stale(group, cols)


def _bands_array(store: zarr.storage.LocalStore, layout: ProductLayout, spec: ExportSpec, n: int) -> None:
    shape = (n, spec.n_times, *layout.sample_shape)
    path = f"{layout.name}/{BANDS}"
    try:
        arr = zarr.open_array(store, path=path, mode="r+")
    except (FileNotFoundError, zarr.errors.NodeTypeValidationError, KeyError):
        arr = None
    if arr is not None and arr.shape[1:] == shape[1:] and arr.dtype == np.dtype(layout.dtype):
        if arr.shape != shape:
            arr.resize(shape)  # drops shards past the new end; changed ones are rewritten by their shard key
        arr.attrs.put(_bands_attrs(layout, spec))
        return
    fill = layout.nodata if layout.nodata is not None else (np.nan if np.dtype(layout.dtype).kind == "f" else 0)
    zarr.create_array(
        store,
        name=path,
        shape=shape,
        dtype=layout.dtype,
        chunks=(1, 1, *layout.sample_shape),
        shards=(spec.shard_size, spec.n_times, *layout.sample_shape),
        compressors=spec.codec.zarr_compressors(),
        fill_value=np.array(fill).astype(layout.dtype),
        dimension_names=DIMS,
        attributes=_bands_attrs(layout, spec),
        config={"write_empty_chunks": True},
        overwrite=True,
    )


def _bands_attrs(layout: ProductLayout, spec: ExportSpec) -> dict[str, Any]:
    names = [c for c in COORDINATES if c not in ("center_wavelength", "fwhm") or _has(layout, c)]
    return {
        "coordinates": " ".join(names),
        "long_name": f"{layout.name} patches (sample, season, band, y, x) in the source's {layout.dtype}",
        "nodata": layout.nodata,
        "codec": spec.codec.describe(),
    }


def _has(layout: ProductLayout, coord: str) -> bool:
    vals = layout.center_nm if coord == "center_wavelength" else layout.fwhm_nm
    return bool(vals) and all(v is not None for v in vals)


def _write_column(store: zarr.storage.LocalStore, path: str, col: Column) -> None:
    data = col.data
    per_sample = max(1, data.nbytes // max(data.shape[0], 1)) if data.ndim and col.dims[0] == "sample" else 1
    samples = max(1, min(META_CHUNK, META_CHUNK_BYTES // per_sample))
    chunks = tuple(min(max(s, 1), samples) if d == "sample" else max(s, 1)
                   for d, s in zip(col.dims, data.shape, strict=True))
    dtype: Any = str if data.dtype.kind in "UTO" else data.dtype
    # zstd as zarr's default, plus a CRC32C per chunk as the bands have: a corrupt datetime or scene id chunk
    # fails its read (and `ssl4eo verify`) instead of passing as data
    arr = zarr.create_array(store, name=path, shape=data.shape, dtype=dtype, chunks=chunks,
                            dimension_names=col.dims, attributes=col.attrs, overwrite=True,
                            fill_value="" if dtype is str else None, compressors=[ZstdCodec(level=3), Crc32cCodec()])
    if data.size:
        arr[...] = data


def _drop_stale(group: zarr.Group, keep: Mapping[str, Column]) -> None:
    for name in list(group.array_keys()):
        if name not in keep and name not in (BANDS, "shard_crc32c"):
            del group[name]


def finish(store_path: Path, spec: ExportSpec, root_attrs: Mapping[str, Any], stats: Mapping[str, dict[str, Any]],
           checksums: Mapping[str, Sequence[int]]) -> None:
    """Write the checksum arrays and the group and root attributes, then consolidate the metadata."""
    store = zarr.storage.LocalStore(Path(store_path))
    root = zarr.open_group(store, mode="a", zarr_format=3, use_consolidated=False)
    n = zarr.open_array(store, path=f"{spec.products[0].name}/{BANDS}", mode="r").shape[0]
    for layout in spec.products:
        crc = np.asarray(checksums[layout.name], dtype=np.uint32)
        if crc.shape != (n_shards(n, spec.shard_size),):
            raise ValueError(f"{layout.name}: {crc.size} shard checksums for {n} samples; finish every shard first")
        _write_column(store, f"{layout.name}/shard_crc32c", Column(("shard",), crc, {
            "long_name": "CRC32C of each bands shard file, as written", "shard_size": spec.shard_size}))
        group = root[layout.name]
        assert isinstance(group, zarr.Group)
        group.attrs.put({ATTR: group_attrs(layout, spec, n, stats[layout.name])})
    root.attrs.put({ATTR: {**root_attrs, "status": "complete"}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)  # "consolidated metadata is not in the v3 spec"
        zarr.consolidate_metadata(store)


def group_attrs(layout: ProductLayout, spec: ExportSpec, n: int, stats: Mapping[str, Any]) -> dict[str, Any]:
    """Self-description of a product group, enough for the catalog, verify and a training job."""
    d = asdict(layout)
    d.pop("center_nm")
    d.pop("fwhm_nm")
    return {
        **d,
        "bands": list(layout.bands),
        "n_samples": n,
        "n_times": spec.n_times,
        "shard_size": spec.shard_size,
        "codec": asdict(spec.codec),
        "stats": dict(stats),
        "stats_note": f"over non-nodata finite pixels, every {spec.stats_stride}th row and column; percentiles "
        "from a 65,536-bin histogram (exact for 8/16-bit integers)",
    }


def reset(store_path: Path, state_path: Path, why: str) -> None:
    """Delete a store built with another layout (and its shard state); it is rebuilt from staging."""
    log.warning("rebuilding %s: %s", store_path, why)
    shutil.rmtree(store_path, ignore_errors=True)
    shutil.rmtree(state_path, ignore_errors=True)
