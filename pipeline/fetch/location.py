"""Fetch one location: every requested product, one acquisition per season, co-registered on one UTM grid.

Pure orchestration over two seams, :class:`~pipeline.sources.Source` (search) and :class:`~pipeline.fetch.read.Reader`
(pixels), so tests can run it against the local archive or against fakes. A location is complete only when every
product has every season; the first (product, season) that cannot be filled ends it with a reason.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from pipeline.errors import SourceError
from pipeline.fetch import quality
from pipeline.fetch.grid import PatchGrid, location_centre, lonlat_boxes, patch_grid
from pipeline.fetch.radiometry import band_radiometry
from pipeline.fetch.read import Reader, ReadError, ReadSpec, to_db
from pipeline.fetch.request import FetchParams, LocationTask, ProductRequest
from pipeline.fetch.seasons import Window, location_year, rank, rank_by_time, windows
from pipeline.ledger import Reason
from pipeline.sources import SceneRef, SearchQuery, Source
from pipeline.staging import SeasonPick, StagedLocation, StagedProduct

GRD_K_DB = 60.0
"""Calibration constant of Sentinel-1 GRD amplitude: sigma0_dB = 20 log10(DN) - GRD_K_DB (see README)."""


@dataclass(frozen=True)
class Patch:
    data: np.ndarray
    pick: SeasonPick


@dataclass
class LocationResult:
    location_id: int
    reason: Reason | None = None
    detail: str = ""
    meta: StagedLocation | None = None
    arrays: dict[str, np.ndarray] | None = None
    reads: int = 0

    @property
    def ok(self) -> bool:
        return self.reason is None


class _Failed(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def fetch_location(task: LocationTask, params: FetchParams, source: Source, reader: Reader,
                   pool: ThreadPoolExecutor | None = None) -> LocationResult:
    """Fetch every product and season of ``task``; never raises for data problems (they become a reason)."""
    res = LocationResult(task.location_id)
    centre = location_centre(task.lon, task.lat, task.epsg)
    grids = {p.name: patch_grid(centre, task.epsg, p.res, p.patch_px) for p in params.products}
    year = location_year(params.years, params.season_seed, task.location_id)
    wins = windows(params.reference_dates, params.half_width_days, year)
    mapper: Callable = pool.map if pool is not None else map
    patches: dict[str, list[Patch]] = {p.name: [] for p in params.products}
    optical = [p for p in params.products if not p.is_sar]
    sar = [p for p in params.products if p.is_sar]
    try:
        for w in wins:
            anchor: dt.datetime | None = None
            for p in optical + sar:
                patch = _fill(p, w, grids[p.name], params, source, reader, mapper, res, anchor if p.is_sar else None)
                patches[p.name].append(patch)
                if anchor is None and not p.is_sar:
                    anchor = dt.datetime.fromisoformat(patch.pick.datetime)
    except _Failed as f:
        res.reason, res.detail = f.reason, f.detail
        return res
    staged = {}
    arrays = {}
    for p in params.products:
        g = grids[p.name]
        staged[p.name] = StagedProduct(p.name, p.bands, p.dtype, p.patch_px, p.res, g.transform,
                                       tuple(x.pick for x in patches[p.name]))
        arrays[p.name] = np.stack([x.data for x in patches[p.name]])
    res.meta = StagedLocation(task.location_id, task.lon, task.lat, task.epsg, staged)
    res.arrays = arrays
    return res


def _fill(p: ProductRequest, w: Window, grid: PatchGrid, params: FetchParams, source: Source, reader: Reader,
          mapper: Callable, res: LocationResult, anchor: dt.datetime | None) -> Patch:
    """The first acceptable candidate of product ``p`` in window ``w``; raises _Failed with the reason."""
    boxes = lonlat_boxes(grid)
    if p.is_sar and anchor is not None:
        lim = dt.timedelta(days=params.s1_max_days)
        q = SearchQuery(p.collection, boxes[0], anchor - lim, anchor + lim, None, params.max_items,
                        p.platforms)
    else:
        q = SearchQuery(p.collection, boxes[0], w.start, w.end,
                        None if p.is_sar else params.max_scene_cloud, params.max_items, p.platforms)
    try:
        found = _search(source, q, boxes)
    except SourceError as e:
        raise _Failed(Reason.SOURCE_ERROR, f"{p.name} season {w.season}: search failed: {e}") from None
    # Scenes without every asset the product reads are no candidates (a catalog mixes them: Sentinel-1 EW or
    # HH+HV acquisitions beside IW VV+VH); when none has them, say which assets were missing
    need = {r.asset for r in p.reads} | ({p.mask_asset} if p.mask_asset else set())
    usable = [s for s in found if need <= {a.key for a in s.assets}]
    if found and not usable:
        have = sorted({a.key for a in found[0].assets})
        raise _Failed(Reason.NO_CANDIDATE, f"{p.name} season {w.season}: {len(found)} scene(s) found, none with "
                                           f"asset(s) {sorted(need)} (e.g. {found[0].id}: {', '.join(have)[:120]})")
    found = usable
    if p.is_sar and anchor is not None:
        cands = rank_by_time(found, anchor, params.s1_max_days)
        if not cands:
            raise _Failed(Reason.NO_S1_MATCH, f"{p.name} season {w.season}: no scene within "
                                              f"{params.s1_max_days:g} days of {anchor:%Y-%m-%d}")
    else:
        cands = rank(found, w.reference)
    if not cands:
        raise _Failed(Reason.NO_CANDIDATE, f"{p.name} season {w.season}: no scene in {w.start:%Y-%m-%d}.."
                                           f"{w.end:%Y-%m-%d} under {params.max_scene_cloud:g}% cloud")
    rejections: Counter[Reason] = Counter()
    details = []
    for scene in cands[: params.max_candidates]:
        try:
            data, mask = _read_scene(p, scene, grid, reader, mapper, res)
        except (ReadError, SourceError) as e:
            rejections[Reason.SOURCE_ERROR] += 1
            details.append(f"{scene.id}: {_brief(e)}")
            continue
        valid = quality.valid_pixels(data, p.nodata)
        nodata_frac = 1.0 - float(valid.mean())
        cloud_frac = quality.cloud_fraction(p.name, mask, valid)
        if nodata_frac > params.max_patch_nodata:
            rejections[Reason.NODATA] += 1
            details.append(f"{scene.id}: nodata {nodata_frac:.1%}")
            continue
        if cloud_frac > params.max_patch_cloud:
            rejections[Reason.TOO_CLOUDY] += 1
            details.append(f"{scene.id}: cloud {cloud_frac:.1%}")
            continue
        scale, offset = band_radiometry(p, scene)
        pick = SeasonPick(w.season, scene.datetime.astimezone(dt.UTC).isoformat(), scene.id, scene.self_href,
                          scene.collection, round(cloud_frac, 6), round(nodata_frac, 6), scale, offset)
        return Patch(data, pick)
    reason = verdict(rejections)
    summary = "; ".join(details[:3])
    raise _Failed(reason, f"{p.name} season {w.season}: {len(details)} candidate(s) rejected: {summary}")


def _search(source: Source, q: SearchQuery, boxes: tuple[tuple[float, float, float, float], ...]
            ) -> list[SceneRef]:
    """``q`` over each box (two across the antimeridian), scenes found twice kept once."""
    seen: dict[str, SceneRef] = {}
    for b in boxes:
        for s in source.search(replace(q, bbox=b)):
            seen.setdefault(s.id, s)
    return list(seen.values())


def verdict(rejections: Counter[Reason]) -> Reason:
    """The reason of a window whose every candidate was rejected: SOURCE_ERROR if any candidate could not be read
    (the location is retried: the unread one may be the best), else the commonest data reason."""
    if rejections[Reason.SOURCE_ERROR]:
        return Reason.SOURCE_ERROR
    return rejections.most_common(1)[0][0]


def _brief(e: Exception) -> str:
    """A rejection in a few words: for a read error the asset's file name and GDAL's message, not the whole href
    (a signed URL alone is longer than the 160 characters kept)."""
    if isinstance(e, ReadError):
        return f"{e.href.split('?', 1)[0].rstrip('/').rsplit('/', 1)[-1]}: {e.message}"[:160]
    return str(e)[:160]


def _read_scene(p: ProductRequest, scene: SceneRef, grid: PatchGrid, reader: Reader, mapper: Callable,
                res: LocationResult) -> tuple[np.ndarray, np.ndarray | None]:
    specs = []
    for r in p.reads:
        a = scene.asset(r.asset)
        specs.append(ReadSpec(a.href, r.band_indexes, "bilinear", p.nodata if not p.is_sar else a.nodata))
    if p.mask_asset:
        specs.append(ReadSpec(scene.asset(p.mask_asset).href, (1,), "nearest", None))
    outs = list(mapper(lambda s: reader.read(s, grid), specs))
    res.reads += len(specs)
    mask = outs.pop()[0] if p.mask_asset else None
    data = np.concatenate(outs, axis=0)
    if p.is_sar:
        amplitude = p.name == "s1_grd"
        data = to_db(data, specs[0].nodata, amplitude=amplitude, k_db=GRD_K_DB if amplitude else 0.0)
    elif data.dtype != np.dtype(p.dtype):  # the archive's dtype is the product's; a foreign catalog may differ
        data = data.astype(p.dtype)
    if mask is not None and p.nodata is not None:
        # the quality layer's own fill (SCL 0, QA_PIXEL fill bit) also marks nodata
        fill = (mask == 0) if p.name == "s2_l2a" else ((mask & quality.QA_FILL_BIT) != 0 if
                                                      p.name.startswith("landsat") else np.zeros_like(mask, bool))
        if fill.any():  # in place, and only when needed (a full copy per patch otherwise)
            data[:, fill] = np.asarray(p.nodata, dtype=data.dtype)
    return data, mask
