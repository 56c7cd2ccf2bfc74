"""The straightforward sampler: one candidate at a time, an R-tree query and insert per candidate.

This is how SSL4EO-L placed its locations (an ``rtree`` of boxes, query, insert), with this project's exact
footprint test on the R-tree hits. It consumes the same candidate stream and applies the same rules as
:func:`sampling.sampler.sample_locations`, so both must place the very same locations; the tests and the
benchmark (``tests/bench/bench_sampler.py``) hold the fast sampler to that. Not part of the public API; needs
the ``rtree`` package (dev extra).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from sampling.candidates import BLOCK, CandidateStream, seed_words
from sampling.filters import area_rejects, load_land_mask, prepared, water_fraction
from sampling.geometry import M_MIN, UTM_LAT_MAX, UTM_LAT_MIN, _tm, centre_distance_bound
from sampling.overlap import EPS_SAME_M, Squares, overlaps
from sampling.sampler import REASONS, SamplerOptions, SamplingError


@dataclass
class ReferenceResult:
    candidate: NDArray[np.int64]
    """Stream index of every accepted candidate, in acceptance order."""
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    city: NDArray[np.int64]
    next_candidate: int
    rejected: dict[str, int]


def reference_place(cities: pd.DataFrame, n: int, footprint_m: float, sigma_m: float, seed: int,
                    options: SamplerOptions | None = None, stream_id: int = 0) -> ReferenceResult:
    """Place ``n`` new locations (no existing ones) one candidate at a time."""
    from rtree import index

    opt = options or SamplerOptions()
    weights = cities["population"].to_numpy(np.float64) if opt.city_choice == "population" else None
    stream = CandidateStream(cities["lon"].to_numpy(), cities["lat"].to_numpy(), sigma_m,
                             seed_words(seed, stream_id), weights)
    include, exclude = prepared(opt.include), prepared(opt.exclude)
    is_land = (opt.land_mask or load_land_mask()) if opt.land_filter else None
    half = footprint_m / 2.0
    lim = 2.0 * half + EPS_SAME_M
    r = float(centre_distance_bound(half, half)) / M_MIN / 2.0  # two boxes meet iff each axis is within 2r
    prop = index.Property()
    prop.dimension = 3
    tree = index.Index(properties=prop)
    tm = _tm()
    acc_zone: list[int] = []
    acc_e: list[float] = []
    acc_n: list[float] = []
    out: list[int] = []
    counts = dict.fromkeys(REASONS, 0)
    k, run = 0, 0
    block_start, cand = -1, None
    while len(out) < n:
        if k >= block_start + BLOCK or cand is None:
            block_start = k - k % BLOCK
            cand = stream.take(block_start, block_start + BLOCK)
        i = k - block_start
        lon, lat = float(cand.lon[i]), float(cand.lat[i])
        k += 1
        reason = _one(lon, lat, half, lim, r, tm, tree, acc_zone, acc_e, acc_n, opt, include, exclude, is_land)
        if reason:
            counts[reason] += 1
            run += 1
            if run >= opt.max_candidates_per_location:
                raise SamplingError(f"placed {len(out)} of {n} locations", placed=len(out), requested=n,
                                    rejected=counts)
            continue
        run = 0
        out.append(k - 1)
    idx = np.asarray(out, dtype=np.int64)
    allc = stream.take(0, k) if len(idx) else None
    return ReferenceResult(idx, allc.lon[idx] if allc else np.zeros(0), allc.lat[idx] if allc else np.zeros(0),
                           allc.city[idx] if allc else np.zeros(0, np.int64), k, counts)


def _one(lon: float, lat: float, half: float, lim: float, r: float, tm: object, tree: object,
         acc_zone: list[int], acc_e: list[float], acc_n: list[float], opt: SamplerOptions,
         include: object, exclude: object, is_land: object) -> str | None:
    """The rejection reason of one candidate (None: accepted and inserted into the index)."""
    if not UTM_LAT_MIN <= lat <= UTM_LAT_MAX:
        return "latitude"
    zone = math.floor((lon + 180.0) / 6.0) % 60 + 1
    rel = lon - (zone * 6.0 - 183.0)
    rel = rel - 360.0 if rel >= 180.0 else (rel + 360.0 if rel < -180.0 else rel)
    e, nn = tm.transform(rel, lat)  # type: ignore[attr-defined]
    cl, sl = math.cos(math.radians(lat)), math.sin(math.radians(lat))
    x, y, z = cl * math.cos(math.radians(lon)), cl * math.sin(math.radians(lon)), sl
    box = (x - r, y - r, z - r, x + r, y + r, z + r)
    for j in tree.intersection(box):  # type: ignore[attr-defined]
        if acc_zone[j] == zone:
            if abs(acc_e[j] - e) < lim and abs(acc_n[j] - nn) < lim:
                return "overlap"
        else:
            q = Squares(np.array([lon]), np.array([lat]), np.array([zone]), np.array([e]), np.array([nn]),
                        np.array([half]))
            x = Squares(np.zeros(1), np.zeros(1), np.array([acc_zone[j]]), np.array([acc_e[j]]),
                        np.array([acc_n[j]]), np.array([half]))
            if overlaps(q, np.zeros(1, np.int64), x, np.zeros(1, np.int64))[0]:
                return "overlap"
    if include is not None or exclude is not None:
        a = (np.array([lon]), np.array([lat]), np.array([zone]), np.array([half]))
        in_ex, out_in = area_rejects(*a, include, exclude)  # type: ignore[arg-type]
        if in_ex[0]:
            return "exclude"
        if out_in[0]:
            return "include"
    if is_land is not None:
        wf = water_fraction(np.array([lon]), np.array([lat]), np.array([zone]), np.array([half]), is_land)  # type: ignore[arg-type]
        if wf[0] > opt.max_water_fraction:
            return "water"
    tree.insert(len(acc_zone), box)  # type: ignore[attr-defined]
    acc_zone.append(zone)
    acc_e.append(float(e))
    acc_n.append(float(nn))
    return None
