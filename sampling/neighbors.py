"""Near-pair search on a dense latitude/longitude grid hash (numpy only, global, antimeridian-safe).

Points are bucketed into cells of ``h`` deg latitude by ``w`` deg longitude. Each cell keeps a chain of its
points (``head[cell]`` -> ``next[point]`` -> ... -> -1), so points can be added batch by batch without a
rebuild. A query collects every point within a surface distance ``d`` of each query point by visiting the
rows and columns that the latitude and longitude bounds of ``d`` can reach (more columns near the poles,
wrapping around the antimeridian) and walking those chains, all queries at once. The result is a superset
of the true near pairs; callers filter it exactly.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from sampling.geometry import M_MIN, max_lon_separation_deg

MAX_CELLS = 8_000_000
"""Upper bound of the dense cell table (int32): the cell side is never below ~0.09 deg."""

_EMPTY = (np.zeros(0, np.int64), np.zeros(0, np.int64))


class LatLonGrid:
    """A growable grid index of points (lon in [-180, 180), lat in [-90, 90]); ids are insertion order.

    Rows are ``h`` deg of latitude; each row has its own column width, about ``cell_deg / cos(latitude)``
    at the row's poleward edge, so cells are roughly square on the ground at every latitude.
    """

    def __init__(self, cell_deg: float) -> None:
        cell_deg = max(float(cell_deg), math.sqrt(180.0 * 360.0 / MAX_CELLS))
        self.nrows = max(1, math.floor(180.0 / cell_deg))
        self.h = 180.0 / self.nrows
        edge = np.arange(self.nrows + 1) * self.h - 90.0
        poleward = np.maximum(np.abs(edge[:-1]), np.abs(edge[1:]))
        self.ncols = np.maximum(1, np.floor(360.0 * np.cos(np.radians(poleward)) / cell_deg)).astype(np.int64)
        self.w = 360.0 / self.ncols
        self.row_start = np.concatenate([[0], np.cumsum(self.ncols)[:-1]])
        self.head = np.full(int(self.ncols.sum()), -1, dtype=np.int32)
        self.next = np.zeros(1024, dtype=np.int32)
        self.n = 0
        self._touched: list[NDArray[np.int64]] = []

    def _col(self, lon: NDArray[np.float64], row: NDArray[np.int64]) -> NDArray[np.int64]:
        return np.minimum(np.floor((lon + 180.0) / self.w[row]).astype(np.int64), self.ncols[row] - 1)

    def cells(self, lon: NDArray[np.float64], lat: NDArray[np.float64]) -> NDArray[np.int64]:
        row = np.clip(np.floor((lat + 90.0) / self.h).astype(np.int64), 0, self.nrows - 1)
        return self.row_start[row] + self._col(lon, row)

    def insert(self, lon: NDArray[np.float64], lat: NDArray[np.float64]) -> NDArray[np.int64]:
        """Add points; they get ids ``n .. n + len(lon) - 1``. Returns, per new point, how many of the
        points inserted before it in this call share its cell (a cheap crowding measure)."""
        m = len(lon)
        if m == 0:
            return np.zeros(0, dtype=np.int64)
        cells = self.cells(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
        order = np.argsort(cells, kind="stable")
        cs = cells[order]
        ids = (order + self.n).astype(np.int32)
        if self.n + m > len(self.next):
            grown = np.zeros(max(2 * len(self.next), self.n + m), dtype=np.int32)
            grown[: self.n] = self.next[: self.n]
            self.next = grown
        last = np.ones(m, dtype=bool)
        last[:-1] = cs[1:] != cs[:-1]
        nxt = np.empty(m, dtype=np.int32)
        nxt[:-1] = ids[1:]
        nxt[last] = self.head[cs[last]]
        self.next[ids] = nxt
        first = np.ones(m, dtype=bool)
        first[1:] = cs[1:] != cs[:-1]
        self.head[cs[first]] = ids[first]
        self._touched.append(cs[first])
        self.n += m
        pos = np.arange(m)
        rank = np.empty(m, dtype=np.int64)
        rank[order] = pos - np.maximum.accumulate(np.where(first, pos, 0))
        return rank

    def clear(self) -> None:
        """Remove every point (cheap: only the touched cells are reset)."""
        for cs in self._touched:
            self.head[cs] = -1
        self._touched.clear()
        self.n = 0

    def query(self, lon: NDArray[np.float64], lat: NDArray[np.float64],
              dist_m: float) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """All (query index, point id) pairs whose surface distance may be <= ``dist_m`` (a superset)."""
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        if self.n == 0 or len(lon) == 0:
            return _EMPTY
        dphi = math.degrees(dist_m / M_MIN)
        r_lo = np.floor((lat - dphi + 90.0) / self.h).astype(np.int64)
        nr = np.floor((lat + dphi + 90.0) / self.h).astype(np.int64) - r_lo + 1
        dlam = max_lon_separation_deg(np.abs(lat) + dphi, dist_m)
        west, east = lon - dlam + 180.0, lon + dlam + 180.0
        qs: list[NDArray[np.int64]] = []
        ps: list[NDArray[np.int32]] = []
        for i in range(int(nr.max())):
            ok = np.flatnonzero((i < nr) & (r_lo + i >= 0) & (r_lo + i < self.nrows))
            if len(ok) == 0:
                continue
            row = r_lo[ok] + i
            w, ncols = self.w[row], self.ncols[row]
            c_lo = np.floor(west[ok] / w).astype(np.int64)
            nc = np.minimum(np.floor(east[ok] / w).astype(np.int64) - c_lo + 1, ncols)
            c_lo += np.where(c_lo < 0, ncols, 0)  # west >= -dlam: from here on 0 <= c_lo + j < 2 * ncols
            base = self.row_start[row]
            for j in range(int(nc.max())):
                if j:
                    sel = np.flatnonzero(j < nc)
                    col, nco, bas, q = c_lo[sel] + j, ncols[sel], base[sel], ok[sel]
                else:
                    col, nco, bas, q = c_lo, ncols, base, ok
                p = self.head[bas + col - np.where(col >= nco, nco, 0)]
                hit = p >= 0
                qs.append(q[hit])
                ps.append(p[hit])
        q, ptr = np.concatenate(qs), np.concatenate(ps)
        out_q: list[NDArray[np.int64]] = []
        out_x: list[NDArray[np.int32]] = []
        while len(q):
            out_q.append(q)
            out_x.append(ptr)
            ptr = self.next[ptr]
            live = ptr >= 0
            q, ptr = q[live], ptr[live]
        if not out_q:
            return _EMPTY
        return np.concatenate(out_q), np.concatenate(out_x).astype(np.int64)
