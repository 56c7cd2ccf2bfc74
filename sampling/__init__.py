"""Global location sampler: cities + Gaussian offsets in metres, exact footprint overlap rejection.

Public API
----------
``sample_locations(cities, n, footprint_m, sigma_m, seed, options=None, existing=None) -> GeoDataFrame``
    Place locations until ``n`` exist in total. ``cities`` is a table with columns city_id, name, country,
    lon, lat, population (see :func:`load_geonames_cities`, :func:`rank_cities`); ``footprint_m`` is the
    side of each location's square footprint in its UTM zone; offsets from the city are N(0, sigma_m^2)
    east and north, in metres, mapped onto the ellipsoid along geodesics. ``options`` is a
    :class:`SamplerOptions` (city choice, land filter, include/exclude areas, give-up limit). ``existing``
    (e.g. from :func:`read_locations`) is kept row for row, ids included, and new locations avoid all of it.
    Returns columns exactly ``location_id`` (int64, stable), ``lon``, ``lat`` (float64, centre), ``epsg``
    (int32, WGS 84 / UTM), ``city``, ``country`` (str), ``city_id`` (int64), ``dist_m`` (float64, geodesic
    distance to the city) and ``geometry`` (the footprint polygon, EPSG:4326). ``attrs`` carries the
    sampler state written into the file (for extension) and the run's counts.
    Raises :class:`SamplingError` (one line: what is wrong and which knob to change), also when the
    count cannot be placed (saturated cities: it says how many were placed).

Guarantees: no two footprints (existing ones included) share area anywhere, also across UTM zones and the
antimeridian; latitudes outside UTM (80 S .. 84 N) are rejected. Same inputs and seed give byte-identical
output, and extending a file written by the same settings gives exactly the file a single run with the
larger count would have written.

``write_locations(gdf, path)`` / ``read_locations(path)``: locations.parquet (GeoParquet 1.1, WKB).
``write_plots(gdf, out_dir, sigma_m)``: the map and distance-histogram PNGs next to it.
``read_areas(path)``: include/exclude areas from GeoJSON or GeoParquet as one EPSG:4326 geometry.

Layout: ``geometry`` (UTM, footprints), ``candidates`` (the seeded stream), ``neighbors`` (grid hash),
``overlap`` (exact tests, in-order resolution), ``filters`` (areas, land), ``sampler`` (the driver) and
``table`` (the output columns) are
pure; ``io`` and ``plots`` do the file work. ``_reference`` is the one-at-a-time R-tree sampler the tests
and the benchmark compare against. The package never configures logging.
"""

from __future__ import annotations

from sampling.filters import MissingExtraError
from sampling.io import load_geonames_cities, rank_cities, read_areas, read_locations, write_locations
from sampling.plots import write_plots
from sampling.sampler import CITY_COLUMNS, COLUMNS, SamplerOptions, SamplingError, sample_locations

__all__ = [
    "CITY_COLUMNS",
    "COLUMNS",
    "MissingExtraError",
    "SamplerOptions",
    "SamplingError",
    "load_geonames_cities",
    "rank_cities",
    "read_areas",
    "read_locations",
    "sample_locations",
    "write_locations",
    "write_plots",
]
