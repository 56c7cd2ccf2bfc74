"""The archive's sites: real cities spanning several UTM zones, both hemispheres, one above 60 N and one that
straddles a UTM zone boundary (London, centred on Greenwich by the 0 deg meridian, the 30/31 boundary: its scenes
come as two tiles, one per zone, like real Sentinel-2 MGRS tiles)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Site:
    name: str
    country: str
    lon: float
    lat: float
    population: int
    geonameid: int
    epsgs: tuple[int, ...]
    """UTM zones of the site's scene tiles (two for a site on a zone boundary)."""


SITES: tuple[Site, ...] = (
    Site("Munich", "DE", 11.5755, 48.1374, 1_260_391, 2867714, (32632,)),
    Site("London", "GB", -0.0050, 51.4800, 8_961_989, 2643743, (32630, 32631)),  # Greenwich: 350 m from 0 deg
    Site("Sao Paulo", "BR", -46.6361, -23.5475, 10_021_295, 3448439, (32723,)),
    Site("Nairobi", "KE", 36.8172, -1.2864, 2_750_547, 184745, (32737,)),
    Site("Tromso", "NO", 18.9560, 69.6496, 64_448, 3133880, (32634,)),
)


def site_by_name(name: str) -> Site:
    for s in SITES:
        if s.name == name:
            return s
    raise KeyError(f"no archive site {name!r}; sites: {', '.join(s.name for s in SITES)}")
