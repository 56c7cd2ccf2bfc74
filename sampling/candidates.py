"""The candidate stream: an endless, seeded sequence of (city, Gaussian offset) draws.

Candidate ``k`` of a stream depends only on the stream's seed words and ``k``: candidates come in fixed
blocks of :data:`BLOCK`, and block ``b`` is drawn from ``numpy.random.Generator(PCG64(SeedSequence(words +
(b,))))``. So the stream is the same whatever ranges it is read in, which is what lets the vectorised sampler
take candidates in batches of any size and still decide exactly as a one-at-a-time loop would.

Offsets are drawn in metres in the city's azimuthal equidistant frame (east, north ~ N(0, sigma^2) each) and
mapped onto the ellipsoid exactly with the direct geodesic problem: the location lies at geodesic distance
``hypot(dx, dy)`` and azimuth ``atan2(dx, dy)`` from the city. No degree conversion, so no cos(latitude) bug.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sampling.geometry import geod

BLOCK = 4096
STREAM_TAG = 0x55344C53  # constant first seed word: keeps these streams apart from any other use of the seed


def seed_words(seed: int, stream_id: int) -> tuple[int, ...]:
    """Seed words of a stream: non-negative ints for ``SeedSequence`` (negative seeds are allowed)."""
    return (STREAM_TAG, int(seed < 0), abs(int(seed)), int(stream_id))


@dataclass(frozen=True)
class Candidates:
    """A range of the candidate stream (all arrays have one entry per candidate, in stream order)."""

    start: int
    city: NDArray[np.int64]
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    dist_m: NDArray[np.float64]
    dx_m: NDArray[np.float64]
    dy_m: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.city)


class CandidateStream:
    """Draws candidates around ``cities`` (lon/lat arrays) with offset std-dev ``sigma_m`` metres.

    ``weights`` None draws cities uniformly; otherwise proportionally to the (non-negative) weights.
    """

    def __init__(self, city_lon: NDArray[np.float64], city_lat: NDArray[np.float64], sigma_m: float,
                 words: tuple[int, ...], weights: NDArray[np.float64] | None = None) -> None:
        self.city_lon = np.ascontiguousarray(city_lon, dtype=np.float64)
        self.city_lat = np.ascontiguousarray(city_lat, dtype=np.float64)
        self.n_cities = len(self.city_lon)
        if self.n_cities == 0:
            raise ValueError("the city table is empty")
        self.sigma_m = float(sigma_m)
        self.words = tuple(int(w) for w in words)
        self.cum: NDArray[np.float64] | None = None
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            total = float(w.sum())
            if not np.isfinite(total) or total <= 0 or (w < 0).any():
                raise ValueError("city weights must be non-negative with a positive sum")
            self.cum = np.cumsum(w) / total

    def _block(self, b: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([*self.words, b])))
        u = rng.random(BLOCK)
        if self.cum is None:
            city = np.minimum((u * self.n_cities).astype(np.int64), self.n_cities - 1)
        else:
            city = np.minimum(np.searchsorted(self.cum, u, side="right"), self.n_cities - 1).astype(np.int64)
        return city, rng.standard_normal((BLOCK, 2)) * self.sigma_m

    def take(self, start: int, stop: int) -> Candidates:
        """Candidates ``start .. stop-1`` of the stream."""
        if start < 0 or stop < start:
            raise ValueError(f"bad candidate range {start}..{stop}")
        b0, b1 = start // BLOCK, -(-stop // BLOCK)
        cities, offs = zip(*(self._block(b) for b in range(b0, b1)), strict=True) if b1 > b0 else ((), ())
        lo = start - b0 * BLOCK
        city = np.concatenate(cities)[lo:lo + stop - start] if cities else np.zeros(0, np.int64)
        off = np.concatenate(offs)[lo:lo + stop - start] if offs else np.zeros((0, 2))
        dx, dy = np.ascontiguousarray(off[:, 0]), np.ascontiguousarray(off[:, 1])
        dist = np.hypot(dx, dy)
        if len(city):
            az = np.degrees(np.arctan2(dx, dy))
            lon, lat, _ = geod().fwd(self.city_lon[city], self.city_lat[city], az, dist)
            lon = np.asarray(lon, dtype=np.float64)
            lat = np.asarray(lat, dtype=np.float64)
        else:
            lon = lat = np.zeros(0)
        return Candidates(start, city, lon, lat, dist, dx, dy)
