"""Season windows per location and the ranking of candidates within a window. Pure."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from pipeline.sources.base import SceneRef


@dataclass(frozen=True)
class Window:
    season: int
    reference: dt.datetime
    start: dt.datetime
    end: dt.datetime


def location_year(years: tuple[int, ...], seed: int, location_id: int) -> int:
    """The seeded per-location year (SSL4EO draws a random delta per location; we draw the year)."""
    rng = np.random.default_rng([seed, location_id])
    return int(years[int(rng.integers(len(years)))])


def windows(reference_dates: tuple[str, ...], half_width_days: int, year: int) -> tuple[Window, ...]:
    out = []
    for k, mmdd in enumerate(reference_dates):
        ref = dt.datetime.fromisoformat(f"{year}-{mmdd}T12:00:00+00:00")
        d = dt.timedelta(days=half_width_days)
        out.append(Window(k, ref, ref - d, ref + d))
    return tuple(out)


def rank(candidates: list[SceneRef], reference: dt.datetime) -> list[SceneRef]:
    """Least cloudy first; ties (and cloud-free SAR) nearest the reference date; then by id for determinism."""
    def key(s: SceneRef) -> tuple[float, float, str]:
        cc = s.cloud_cover if s.cloud_cover is not None else 0.0
        return (round(cc, 3), abs((s.datetime - reference).total_seconds()), s.id)

    return sorted(candidates, key=key)


def rank_by_time(candidates: list[SceneRef], target: dt.datetime, max_days: float) -> list[SceneRef]:
    """Candidates within ``max_days`` of ``target``, nearest first (Sentinel-1 matched to the optical pick)."""
    lim = max_days * 86400
    near = [s for s in candidates if abs((s.datetime - target).total_seconds()) <= lim]
    return sorted(near, key=lambda s: (abs((s.datetime - target).total_seconds()), s.id))
