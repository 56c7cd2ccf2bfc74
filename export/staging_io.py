"""Read the staging store (``pipeline.staging``) into :class:`~export.model.LocationRecord` s, checking each against
the export layout. The one module of ``export`` that knows the staging folder format."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.model import ExportSpec, LocationRecord, ProductRecord
from pipeline.errors import UserError
from pipeline.staging import META, StagedLocation, iter_complete

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StagingScan:
    records: tuple[LocationRecord, ...]
    """Packable locations in sample order (location id ascending)."""
    skipped: dict[int, str]
    """Complete staged locations left out, with why (e.g. a product the config asks for is missing)."""


def scan_staging(out: Path, spec: ExportSpec) -> StagingScan:
    """Every complete staged location that has all products of ``spec``, in location-id order."""
    records: list[LocationRecord] = []
    skipped: dict[int, str] = {}
    legacy: list[int] = []
    for folder in iter_complete(out):
        raw = (folder / META).read_bytes()
        meta = StagedLocation.from_json(raw.decode())
        missing = [p.name for p in spec.products if p.name not in meta.products]
        if missing:
            skipped[meta.location_id] = f"no staged {', '.join(missing)}"
            continue
        prods = {}
        for layout in spec.products:
            sp = meta.products[layout.name]
            _check(meta.location_id, folder, layout.name, tuple(sp.bands), sp.dtype, sp.patch_px,
                   len(sp.seasons), spec)
            for s in sp.seasons:
                if not s.scale and (not legacy or legacy[-1] != meta.location_id):
                    legacy.append(meta.location_id)
                if len(s.scale) not in (0, len(sp.bands)) or len(s.offset) != len(s.scale):
                    raise UserError(f"staged location {meta.location_id:07d} ({folder}) product {layout.name} season "
                                    f"{s.season}: {len(s.scale)} scales and {len(s.offset)} offsets for "
                                    f"{len(sp.bands)} bands; delete that staging folder and rerun download")
            seasons = tuple(sorted(sp.seasons, key=lambda s: s.season))
            prods[layout.name] = ProductRecord(tuple(float(v) for v in sp.transform), seasons)  # type: ignore[arg-type]
        records.append(LocationRecord(meta.location_id, float(meta.lon), float(meta.lat), int(meta.epsg),
                                      str(folder), hashlib.sha256(raw).hexdigest(), prods))
    records.sort(key=lambda r: r.location_id)
    if legacy:
        log.warning("%d staged location(s) (e.g. %07d) were downloaded before scale and offset were kept: theirs "
                    "read NaN; delete those staging folders and rerun download to have them", len(legacy),
                    legacy[0])
    if skipped:
        log.warning("left out %d complete staged location(s) lacking a product, e.g. %s", len(skipped),
                    next(iter(skipped.items())))
    return StagingScan(tuple(records), skipped)


def _check(loc: int, folder: Path, name: str, bands: tuple[str, ...], dtype: str, patch_px: int, n_seasons: int,
           spec: ExportSpec) -> None:
    want = spec.product(name)
    problems = []
    if bands != want.bands:
        problems.append(f"bands {list(bands)} != {list(want.bands)}")
    if np.dtype(dtype) != np.dtype(want.dtype):
        problems.append(f"dtype {dtype} != {want.dtype}")
    if patch_px != want.patch_px:
        problems.append(f"patch {patch_px} px != {want.patch_px} px")
    if n_seasons != spec.n_times:
        problems.append(f"{n_seasons} seasons != {spec.n_times}")
    if problems:
        raise UserError(
            f"staged location {loc:07d} ({folder}) product {name}: {'; '.join(problems)}; the config changed "
            "since download: restore its products/bands/patch_px/seasons, or delete the staging folder and rerun"
            " download"
        )


def read_block(folders: tuple[str, ...], product: str, out: np.ndarray) -> None:
    """Fill ``out`` (sample, time, band, y, x) with the staged arrays of ``folders`` for ``product``."""
    for i, folder in enumerate(folders):
        read_sample(folder, product, out[i])


def read_sample(folder: str | Path, product: str, out: np.ndarray) -> np.ndarray:
    """Read ``<folder>/<product>.npy`` (the staging format, see :func:`pipeline.staging.read_array`) straight
    into ``out`` (time, band, y, x): one read, no intermediate copy. Returns ``out``."""
    path = Path(folder) / f"{product}.npy"
    with open(path, "rb") as f:
        major, _minor = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        if tuple(shape) != out.shape or np.dtype(dtype) != out.dtype or fortran:
            raise UserError(
                f"staged array {path} is {tuple(shape)} {dtype}, expected {out.shape} {out.dtype}; "
                "delete that staging folder and rerun download"
            )
        view = memoryview(out).cast("B")
        if f.readinto(view) != view.nbytes:
            raise UserError(f"staged array {path} is truncated; delete that staging folder and rerun download")
    return out
