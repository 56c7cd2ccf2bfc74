"""The global location sampler: cities + Gaussian offsets in metres, exact footprint overlap rejection.

Semantics (what a one-candidate-at-a-time loop would do; :mod:`sampling._reference` is that loop):
candidates are taken from the seeded stream in order; a candidate is accepted iff its centre latitude is
within UTM's range, its footprint shares no area with any accepted footprint (existing ones included), it
keeps clear of the exclude areas, lies inside the include areas and passes the land filter. The first
rejection reason in that order is the one counted. Sampling stops at the requested count, or fails with
:class:`SamplingError` once ``max_candidates_per_location`` candidates in a row were rejected.

The implementation decides whole batches at once (grid-hash near pairs, exact tests only for near pairs,
in-order resolution of conflicts inside the batch) and gives byte-identical results to the loop.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from sampling.candidates import Candidates, CandidateStream, seed_words
from sampling.filters import LandMask, area_rejects, load_land_mask, prepared, water_fraction
from sampling.geometry import (
    M_MIN,
    UTM_LAT_MAX,
    UTM_LAT_MIN,
    centre_distance_bound,
    to_utm,
    utm_zone,
)
from sampling.neighbors import LatLonGrid
from sampling.overlap import Squares, overlaps, resolve_in_order
from sampling.table import (
    CITY_COLUMNS,
    COLUMNS,
    STATE_KEY,
    STATS_KEY,
    SamplingError,
    build_table,
    check_cities,
    existing_arrays,
)

__all__ = ["CITY_COLUMNS", "COLUMNS", "REASONS", "STATE_KEY", "STATS_KEY", "SamplerOptions", "SamplingError",
           "params_key", "sample_locations"]

ALGORITHM_VERSION = 1
REASONS = ("latitude", "overlap", "exclude", "include", "water")
"""Rejection reasons in precedence order (codes 1..5; 0 is accepted)."""
MAX_BATCH = 1 << 16
MIN_BATCH = 64
PAIR_BUDGET = 4_000_000
"""Most near pairs one batch may examine among its own candidates; a batch whose candidates crowd into a few
cells (a fresh hot spot) is cut short, so memory stays bounded whatever the density."""
"""Most candidates decided at once: small enough that hot spots do not make the in-batch pairs explode."""


@dataclass(frozen=True)
class SamplerOptions:
    """Options of :func:`sample_locations` beyond the count, footprint, sigma and seed."""

    city_choice: Literal["uniform", "population"] = "uniform"
    """How a candidate's city is drawn: uniformly (SSL4EO) or proportionally to population."""
    max_candidates_per_location: int = 200
    """Give up once this many candidates in a row were rejected."""
    land_filter: bool = False
    """Reject candidates whose footprint is mostly water (needs the 'land' extra unless land_mask is set)."""
    max_water_fraction: float = 0.5
    """Largest water fraction the land filter keeps."""
    include: BaseGeometry | None = None
    """EPSG:4326 areas every new footprint must lie in."""
    exclude: BaseGeometry | None = None
    """EPSG:4326 areas every new footprint must keep clear of."""
    land_mask: LandMask | None = field(default=None, compare=False)
    """``is_land(lon, lat)`` replacing the default global-land-mask lookup."""
    polygon_segment_m: float = 4000.0
    """Longest edge segment of the EPSG:4326 footprint polygons written as geometry (at least 2 per edge)."""


class _Placed:
    """Footprints accepted so far (existing first): growable arrays plus their grid index (same ids)."""

    FIELDS = ("lon", "lat", "zone", "e", "n", "half")

    def __init__(self, cell_deg: float) -> None:
        self.size = 0
        self.data: dict[str, NDArray[Any]] = {f: np.zeros(1024, np.int64 if f == "zone" else np.float64)
                                             for f in self.FIELDS}
        self.grid = LatLonGrid(cell_deg)

    def add(self, **cols: NDArray[Any]) -> None:
        m = len(cols["lon"])
        if self.size + m > len(self.data["lon"]):
            cap = max(2 * len(self.data["lon"]), self.size + m)
            for f, a in self.data.items():
                grown = np.zeros(cap, a.dtype)
                grown[: self.size] = a[: self.size]
                self.data[f] = grown
        for f in self.FIELDS:
            self.data[f][self.size:self.size + m] = cols[f]
        self.grid.insert(cols["lon"], cols["lat"])
        self.size += m

    def __getitem__(self, f: str) -> NDArray[Any]:
        return self.data[f][: self.size]


def sample_locations(cities: pd.DataFrame, n: int, footprint_m: float, sigma_m: float, seed: int,
                     options: SamplerOptions | None = None,
                     existing: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """Place locations until ``n`` exist in total (``existing`` rows kept, with their ids); see the module doc.

    ``cities``: columns city_id, name, country, lon, lat, population (candidate order = row order).
    Returns the GeoDataFrame of :data:`COLUMNS` (existing rows first, then new ones in acceptance order);
    ``attrs[STATE_KEY]`` holds what an extension needs to continue the stream, ``attrs[STATS_KEY]`` counts
    (candidates, rejections by reason) and timings (place_s, frame_s and their CPU-time twins *_cpu_s;
    not written to the file).
    """
    t_start, c_start = time.perf_counter(), time.process_time()
    opt = options or SamplerOptions()
    _check_args(n, footprint_m, sigma_m, seed, opt)
    cities = check_cities(cities)
    half = float(footprint_m) / 2.0
    old = existing_arrays(existing, footprint_m)
    n_old = len(old["lon"])
    include, exclude = prepared(opt.include), prepared(opt.exclude)
    key = params_key(cities, footprint_m, sigma_m, seed, opt)
    state = dict(existing.attrs.get(STATE_KEY) or {}) if existing is not None else {}
    if n_old and state.get("params_key") == key:
        stream_id, start = int(state["stream_id"]), int(state["next_candidate"])
    else:
        stream_id, start = (n_old if n_old else 0), 0
    footprint_all = max([float(footprint_m)] + ([float(old["half"].max()) * 2.0] if n_old else []))
    out_state = {"version": ALGORITHM_VERSION, "params_key": key, "stream_id": stream_id,
                 "next_candidate": start, "footprint_m": footprint_all, "sigma_m": float(sigma_m),
                 "seed": int(seed), "city_choice": opt.city_choice, "n_cities": len(cities)}
    stats: dict[str, Any] = {"existing": n_old, "placed": 0, "candidates": 0, "batches": 0,
                             "rejected": dict.fromkeys(REASONS, 0)}
    if n <= n_old:  # nothing to add: the file's state stays as it was, whatever this call's settings
        return build_table(old, None, cities, state or out_state, stats, opt.polygon_segment_m)

    weights = cities["population"].to_numpy(np.float64) if opt.city_choice == "population" else None
    stream = CandidateStream(cities["lon"].to_numpy(), cities["lat"].to_numpy(), sigma_m,
                             seed_words(seed, stream_id), weights)
    is_land = (opt.land_mask or load_land_mask()) if opt.land_filter else None
    max_half = max([half] + ([float(old["half"].max())] if n_old else []))
    placed = _Placed(math.degrees(float(centre_distance_bound(half, max_half)) / M_MIN))
    placed.add(**{f: old[f] for f in _Placed.FIELDS})
    batch_grid = LatLonGrid(math.degrees(float(centre_distance_bound(half, half)) / M_MIN))
    need, pos, run, rate = n - n_old, start, 0, 0.8
    counts = np.zeros(len(REASONS) + 1, dtype=np.int64)
    new_city: list[NDArray[np.int64]] = []
    new_dist: list[NDArray[np.float64]] = []
    maxc = opt.max_candidates_per_location
    while need > 0:
        length = int(min(max(math.ceil(need / rate * 1.1) + 16, MIN_BATCH), MAX_BATCH))
        cand = stream.take(pos, pos + length)
        reason, zone, e, nn = _decide(cand, placed, batch_grid, half, opt, include, exclude, is_land)
        m = len(reason)  # may be a prefix of the batch (see PAIR_BUDGET)
        stats["batches"] += 1
        acc = np.flatnonzero(reason == 0)
        prev = np.concatenate([[-1 - run], acc[:-1]])
        k = min(need, len(acc))
        bad = np.flatnonzero(acc[:k] - prev[:k] - 1 >= maxc)
        fail_at: int | None = None
        if len(bad):
            k = int(bad[0])
            fail_at = int(prev[k]) + maxc
        elif k < need:
            tail_prev = int(acc[-1]) if len(acc) else -1 - run
            if m - 1 - tail_prev >= maxc:
                fail_at = tail_prev + maxc
        end = fail_at if fail_at is not None else (int(acc[k - 1]) if k == need else m - 1)
        counts += np.bincount(reason[: end + 1], minlength=len(REASONS) + 1)
        take = acc[:k]
        placed.add(lon=cand.lon[take], lat=cand.lat[take], zone=zone[take], e=e[take], n=nn[take],
                   half=np.full(k, half))
        new_city.append(cand.city[take])
        new_dist.append(cand.dist_m[take])
        need -= k
        pos = cand.start + end + 1
        run = end - (int(acc[k - 1]) if k else -1 - run)
        processed = pos - start
        rate = max((n - n_old - need) / max(processed, 1), 0.01)
        if fail_at is not None:
            rej = {r: int(c) for r, c in zip(REASONS, counts[1:], strict=True)}
            # why it stopped: the commonest reason among the last maxc candidates (this batch's part of the run)
            last = np.bincount(reason[max(0, fail_at - maxc + 1): fail_at + 1], minlength=len(REASONS) + 1)[1:]
            placed_n = n - need
            kept = f" ({n_old} existing)" if n_old else ""
            raise SamplingError(
                f"placed {placed_n} of {n} locations{kept}, then {maxc} candidates in a row were rejected "
                f"({_reasons_text(rej)}) after {processed} candidates: {_WHY[REASONS[int(np.argmax(last))]]}; "
                "ask for fewer locations, use more cities or a larger sigma, or raise "
                "max_candidates_per_location", placed=placed_n, requested=n, rejected=rej)
    out_state["next_candidate"] = pos
    stats.update(placed=n - n_old, candidates=pos - start,
                 rejected={r: int(c) for r, c in zip(REASONS, counts[1:], strict=True)})
    t_frame, c_frame = time.perf_counter(), time.process_time()
    fresh = {f: placed[f][n_old:] for f in _Placed.FIELDS}
    fresh.update(city=np.concatenate(new_city), dist_m=np.concatenate(new_dist))
    with _gc_paused():  # a million new polygon objects: the cyclic GC would rescan them again and again
        gdf = build_table(old, fresh, cities, out_state, stats, opt.polygon_segment_m)
    stats.update(place_s=round(t_frame - t_start, 4), frame_s=round(time.perf_counter() - t_frame, 4),
                 place_cpu_s=round(c_frame - c_start, 4), frame_cpu_s=round(time.process_time() - c_frame, 4))
    return gdf


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while many objects are created (none of them form cycles)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


_WHY = {
    "overlap": "the cities are saturated for this footprint and sigma",
    "latitude": "most candidates fall beyond UTM's latitudes (80 S to 84 N)",
    "exclude": "most candidates touch the exclude areas",
    "include": "most candidates fall outside the include areas",
    "water": "most candidates are mostly water",
}


def _reasons_text(rej: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in rej.items() if v) or "none"


def _decide(c: Candidates, placed: _Placed, batch_grid: LatLonGrid, half: float, opt: SamplerOptions,
            include: BaseGeometry | None, exclude: BaseGeometry | None, is_land: LandMask | None
            ) -> tuple[NDArray[np.int8], NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """Reason code of every candidate of a batch (0 accepted) as the in-order loop would decide it."""
    m = len(c)
    reason = np.zeros(m, dtype=np.int8)
    lat_ok = (c.lat >= UTM_LAT_MIN) & (c.lat <= UTM_LAT_MAX)
    reason[~lat_ok] = 1
    zone = utm_zone(c.lon)
    ok = np.flatnonzero(lat_ok)
    if len(ok) == m:
        e, nn = to_utm(c.lon, c.lat, zone)
    else:
        e, nn = np.full(m, np.nan), np.full(m, np.nan)
        e[ok], nn[ok] = to_utm(c.lon[ok], c.lat[ok], zone[ok])
    hv = np.full(m, half)
    cs = Squares(c.lon, c.lat, zone, e, nn, hv)
    if placed.size and len(ok):
        ps = Squares(*(placed[f] for f in _Placed.FIELDS))
        qi, xi = placed.grid.query(c.lon[ok], c.lat[ok], float(centre_distance_bound(half, ps.half.max())))
        q = ok[qi]
        reason[q[overlaps(cs, q, ps, xi)]] = 2
    alive = np.flatnonzero(reason == 0)
    filt = np.zeros(len(alive), dtype=np.int8)
    if len(alive):
        a_lon, a_lat, a_zone, a_half = c.lon[alive], c.lat[alive], zone[alive], hv[alive]
        if is_land is not None:
            filt[water_fraction(a_lon, a_lat, a_zone, a_half, is_land) > opt.max_water_fraction] = 5
        in_ex, out_in = area_rejects(a_lon, a_lat, a_zone, a_half, include, exclude)
        filt[out_in] = 4
        filt[in_ex] = 3
    elig = alive[filt == 0]
    rank = batch_grid.insert(c.lon[elig], c.lat[elig])
    over = np.flatnonzero(np.cumsum(rank) * 9 > PAIR_BUDGET)  # estimate: 9 cells x same-cell crowding
    if len(over):  # a fresh hot spot: cut the batch short before the first candidate over the budget
        keep_n = max(int(over[0]), 1)
        m = int(elig[keep_n])
        reason, zone, e, nn = reason[:m], zone[:m], e[:m], nn[:m]
        filt, alive, elig = filt[alive < m], alive[alive < m], elig[:keep_n]
        batch_grid.clear()
        batch_grid.insert(c.lon[elig], c.lat[elig])
    dmax = float(centre_distance_bound(half, half))
    qi, xi = batch_grid.query(c.lon[elig], c.lat[elig], dmax)
    batch_grid.clear()
    keep = xi < qi
    qi, xi = qi[keep], xi[keep]
    hit = overlaps(cs, elig[qi], cs, elig[xi])
    accepted = elig[resolve_in_order(len(elig), qi[hit], xi[hit], np.ones(len(elig), dtype=bool))]
    reason[alive] = filt
    reason[elig] = 2
    reason[accepted] = 0
    failed = alive[filt != 0]
    if len(failed) and len(accepted):  # a filter reject that also overlaps an earlier acceptance: overlap
        batch_grid.insert(c.lon[accepted], c.lat[accepted])
        qi, xi = batch_grid.query(c.lon[failed], c.lat[failed], dmax)
        batch_grid.clear()
        keep = accepted[xi] < failed[qi]
        qi, xi = qi[keep], xi[keep]
        reason[failed[qi[overlaps(cs, failed[qi], cs, accepted[xi])]]] = 2
    return reason, zone, e, nn


def _check_args(n: int, footprint_m: float, sigma_m: float, seed: int, opt: SamplerOptions) -> None:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise SamplingError(f"the location count must be a whole number >= 0, got {n!r}")
    for name, v in (("footprint_m", footprint_m), ("sigma_m", sigma_m)):
        if not isinstance(v, int | float | np.number) or not math.isfinite(v) or v <= 0:
            raise SamplingError(f"{name} must be a finite number of metres > 0, got {v!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise SamplingError(f"seed must be an integer, got {seed!r}")
    if opt.city_choice not in ("uniform", "population"):
        raise SamplingError(f"city_choice must be 'uniform' or 'population', got {opt.city_choice!r}")
    if opt.max_candidates_per_location < 1:
        raise SamplingError("max_candidates_per_location must be >= 1, "
                            f"got {opt.max_candidates_per_location!r}")
    if not 0.0 <= opt.max_water_fraction <= 1.0:
        raise SamplingError(f"max_water_fraction must be within 0..1, got {opt.max_water_fraction!r}")
    if not opt.polygon_segment_m > 0:
        raise SamplingError(f"polygon_segment_m must be > 0, got {opt.polygon_segment_m!r}")


def params_key(cities: pd.DataFrame, footprint_m: float, sigma_m: float, seed: int,
               opt: SamplerOptions) -> str:
    """Digest of everything that decides the candidate stream and its acceptance (not the count)."""
    h = hashlib.sha256()
    for col, dt in (("city_id", np.int64), ("lon", np.float64), ("lat", np.float64), ("population", np.int64)):
        h.update(cities[col].to_numpy(dt).tobytes())
    for g in (opt.include, opt.exclude):
        h.update(b"-" if g is None else hashlib.sha256(shapely.to_wkb(shapely.normalize(g))).digest())
    mask = "none" if not opt.land_filter else ("global-land-mask" if opt.land_mask is None
                                                else getattr(opt.land_mask, "__qualname__", "custom"))
    h.update(json.dumps([ALGORITHM_VERSION, repr(float(footprint_m)), repr(float(sigma_m)), int(seed),
                         opt.city_choice, mask, repr(float(opt.max_water_fraction))]).encode())
    return h.hexdigest()[:32]


