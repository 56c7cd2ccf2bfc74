"""Exact footprint overlap tests on candidate pairs, and the in-order (greedy) acceptance of a batch.

Two footprints *overlap* when their squares share area. A pair in the same UTM zone is compared exactly in
that zone: overlap iff |dE| and |dN| are both below the sum of the half sides (+ :data:`EPS_SAME_M`, which
only guards against re-projection round-off by other tools). A pair in different zones is compared in the
frame of the *earlier* footprint: the later square's boundary, sampled every <= :data:`CROSS_SEGMENT_M`, is
carried into that zone (PROJ, exact transverse Mercator) and tested against the earlier square; the pair
conflicts if the two come within :data:`EPS_CROSS_M`. The sampled boundary departs from the true (slightly
curved) image of the square by well under a millimetre, so no accepted pair ever shares area; a pair that
would merely come within 1 cm of each other across a zone boundary is rejected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray

from sampling.geometry import from_utm, square_rings, to_utm

EPS_SAME_M = 1e-3
EPS_CROSS_M = 1e-2
CROSS_SEGMENT_M = 250.0
BULGE = 3.75e-9
"""Bound (per m^2 of side) on how far a square's edge bows when carried into a neighbouring UTM zone."""
MAX_ROUNDS = 64

Fa = NDArray[np.float64]
Ia = NDArray[np.int64]


@dataclass(frozen=True)
class Squares:
    """Footprints as arrays: centre lon/lat, UTM zone, centre easting/northing in that zone (northern
    frame) and half side; pairs refer to them by index."""

    lon: Fa
    lat: Fa
    zone: Ia
    e: Fa
    n: Fa
    half: Fa


def overlaps(q: Squares, qi: Ia, x: Squares, xi: Ia) -> NDArray[np.bool_]:
    """Whether the later footprint ``q[qi[k]]`` and the earlier footprint ``x[xi[k]]`` share area, per k."""
    qz, xz = q.zone[qi], x.zone[xi]
    qh, xh = _uniform(q.half), _uniform(x.half)
    lim = (qh if qh is not None else q.half[qi]) + (xh if xh is not None else x.half[xi]) + EPS_SAME_M
    same = qz == xz
    out = same & (np.abs(q.e[qi] - x.e[xi]) < lim) & (np.abs(q.n[qi] - x.n[xi]) < lim)
    cross = np.flatnonzero(~same)
    if len(cross):
        a, b = qi[cross], xi[cross]
        out[cross] = _cross_zone(q.lon[a], q.lat[a], q.zone[a], q.e[a], q.n[a], q.half[a],
                                 x.zone[b], x.e[b], x.n[b], x.half[b])
    return out


def _uniform(half: Fa) -> float | None:
    """The common half side when all are equal (the usual case: saves two gathers per pair)."""
    if len(half) and half[0] == half[-1] and half.min() == half.max():
        return float(half[0])
    return None


def _cross_zone(q_lon: Fa, q_lat: Fa, q_zone: Ia, q_e: Fa, q_n: Fa, q_half: Fa,
                x_zone: Ia, x_e: Fa, x_n: Fa, x_half: Fa) -> NDArray[np.bool_]:
    out = np.zeros(len(q_lon), dtype=bool)
    # 1. Necessary condition: the later centre, in the earlier zone, within the rotated-square reach.
    ce, cn = to_utm(q_lon, q_lat, x_zone)
    reach = x_half + q_half * math.sqrt(2.0) * 1.01 + 1.0
    near = np.flatnonzero((np.abs(ce - x_e) < reach) & (np.abs(cn - x_n) < reach))
    if len(near) == 0:
        return out
    # 2. The later square's corners in the earlier zone: its true edges bow out of the straight corner-to-
    #    corner lines by at most BULGE * side^2 (measured <= 0.55 of that), so most pairs are settled here.
    quad = _carried(q_e[near], q_n[near], q_half[near], q_zone[near], x_zone[near], 1)
    xe, xn, xh = x_e[near], x_n[near], x_half[near]
    box = shapely.box(xe - xh, xn - xh, xe + xh, xn + xh)
    bulge = BULGE * (2.0 * q_half[near]) ** 2 + 1e-3
    d = shapely.distance(box, quad)
    inner = xh - bulge
    deep = (inner > 0) & shapely.intersects(shapely.box(xe - inner, xn - inner, xe + inner, xn + inner), quad)
    out[near[deep]] = True
    unsure = np.flatnonzero(~deep & (d <= EPS_CROSS_M + bulge))
    if len(unsure) == 0:
        return out
    # 3. The rest: the boundary sampled every <= CROSS_SEGMENT_M (chord error < 0.3 mm), exact distance.
    u = near[unsure]
    segments = max(1, math.ceil(2.0 * float(q_half[u].max()) / CROSS_SEGMENT_M))
    poly = _carried(q_e[u], q_n[u], q_half[u], q_zone[u], x_zone[u], segments)
    out[u] = shapely.dwithin(box[unsure], poly, EPS_CROSS_M)
    return out


def _carried(e: Fa, n: Fa, half: Fa, zone: Ia, to_zone: Ia, segments: int) -> NDArray[np.object_]:
    """Polygons of squares (centre e/n in ``zone``) carried point by point into ``to_zone`` coordinates."""
    ring = square_rings(e, n, half, segments)
    k = ring.shape[1]
    lon, lat = from_utm(ring[:, :, 0].ravel(), ring[:, :, 1].ravel(), np.repeat(zone, k))
    re, rn = to_utm(lon, lat, np.repeat(to_zone, k))
    return shapely.polygons(np.stack([re, rn], axis=1).reshape(-1, k, 2))


def resolve_in_order(n: int, later: Ia, earlier: Ia, eligible: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Acceptance of ``n`` candidates processed one at a time in index order.

    Candidate i is accepted iff it is ``eligible`` and no accepted candidate j < i conflicts with it, given
    the conflict pairs (later[k] > earlier[k]). Vectorised in rounds (each round settles at least the first
    undecided candidate; usually a handful of rounds settle all), with an in-order loop after
    :data:`MAX_ROUNDS` rounds for long conflict chains. Identical to the sequential loop by construction.
    """
    state = np.where(eligible, 0, 2).astype(np.int8)  # 0 undecided, 1 accepted, 2 rejected
    keep = eligible[later] & eligible[earlier]
    a, b = later[keep], earlier[keep]
    has_partner = np.zeros(n, dtype=bool)
    has_partner[a] = True
    state[(state == 0) & ~has_partner] = 1
    for _ in range(MAX_ROUNDS):
        live = state[a] == 0
        a, b = a[live], b[live]
        if len(a) == 0:
            return state == 1
        sb = state[b]
        state[a[sb == 1]] = 2
        pending = np.zeros(n, dtype=bool)
        pending[a[(sb == 0) & (state[a] == 0)]] = True
        cand = a[state[a] == 0]
        state[cand[~pending[cand]]] = 1
    live = state[a] == 0
    a, b = a[live], b[live]
    order = np.lexsort((b, a))
    a, b = a[order].tolist(), b[order].tolist()
    st = state.tolist()
    k = 0
    while k < len(a):
        i = a[k]
        blocked = False
        while k < len(a) and a[k] == i:
            blocked = blocked or st[b[k]] == 1
            k += 1
        st[i] = 2 if blocked else 1
    return np.asarray(st, dtype=np.int8) == 1
