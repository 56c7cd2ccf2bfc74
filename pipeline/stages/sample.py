"""``ssl4eo sample``: place the locations (cities + Gaussian offsets, exact overlap rejection).

Glue only: the config becomes explicit arguments of :func:`sampling.sample_locations`; an existing
``<out>/locations.parquet`` is extended (every existing row and id kept); the parquet, a map and a distance
histogram are written to ``--out`` and a one-paragraph summary is printed.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import pandas as pd

from pipeline.config import Config
from pipeline.errors import UserError
from pipeline.stages.common import LOCATIONS

log = logging.getLogger(__name__)

# What the sampler's option names are called in the config file (for messages that name the knob).
_KNOBS = {
    "ask for fewer locations": "lower sampling.n_locations (or sampling.oversample)",
    "use more cities or a larger sigma": "raise sampling.n_cities or sampling.sigma_m",
    "raise max_candidates_per_location": "raise sampling.max_candidates_per_location",
}


def city_table(cfg: Config) -> pd.DataFrame:
    """The candidate cities of the config: geonames (population-ranked) or the archive's sites."""
    from sampling import load_geonames_cities, rank_cities

    sc = cfg.sampling
    if sc.cities == "geonames":
        cities = load_geonames_cities(sc.n_cities, sc.min_population)
    else:
        from pipeline.archive.sites import SITES

        cities = rank_cities(pd.DataFrame({
            "city_id": [s.geonameid for s in SITES], "name": [s.name for s in SITES],
            "country": [s.country for s in SITES], "lon": [s.lon for s in SITES],
            "lat": [s.lat for s in SITES], "population": [s.population for s in SITES],
        }), sc.n_cities, sc.min_population)
    if len(cities) == 0:
        raise UserError(f"no city has at least sampling.min_population={sc.min_population} people; "
                        "lower sampling.min_population")
    return cities


def main(cfg: Config, out: Path) -> int:
    from sampling import (
        MissingExtraError,
        SamplerOptions,
        SamplingError,
        read_areas,
        read_locations,
        sample_locations,
        write_locations,
        write_plots,
    )

    t0 = time.perf_counter()
    sc = cfg.sampling
    out = Path(out)
    path = out / LOCATIONS
    try:
        cities = city_table(cfg)
        include = read_areas(sc.include, "sampling.include") if sc.include else None
        exclude = read_areas(sc.exclude, "sampling.exclude") if sc.exclude else None
        existing = read_locations(path) if path.is_file() else None
        opts = SamplerOptions(city_choice=sc.city_choice, max_candidates_per_location=sc.max_candidates_per_location,
                              land_filter=sc.land_filter, max_water_fraction=sc.max_water_fraction,
                              include=include, exclude=exclude)
        n_total = math.ceil(sc.n_locations * sc.oversample - 1e-9)
        gdf = sample_locations(cities, n_total, cfg.footprint_m, sc.sigma_m, sc.seed, opts, existing)
    except MissingExtraError as err:
        raise UserError(f"sampling.land_filter is on but {err}; or set sampling.land_filter: false") from None
    except SamplingError as err:
        msg = str(err)
        for phrase, knob in _KNOBS.items():
            msg = msg.replace(phrase, knob)
        raise UserError(msg) from None
    write_locations(gdf, path)
    stats = gdf.attrs.get("ssl4eo_sampler_stats", {})
    title = (f"{len(gdf):,} locations, footprint {cfg.footprint_m / 1000:g} km, sigma {sc.sigma_m / 1000:g} km, "
             f"seed {sc.seed}")
    map_png, hist_png = write_plots(gdf, out, sc.sigma_m, title)
    rej = stats.get("rejected", {})
    rej_text = ", ".join(f"{v:,} {k}" for k, v in rej.items() if v) or "none"
    n_new, n_old = stats.get("placed", 0), stats.get("existing", 0)
    median = f"median distance to the city {gdf['dist_m'].median() / 1000:.1f} km; " if len(gdf) else ""
    kept = f"kept {n_old:,} existing and " if n_old else ""
    extra = f" ({sc.n_locations:,} x oversample {sc.oversample:g})" if sc.oversample > 1 else ""
    print(
        f"sample: {kept}placed {n_new:,} new location(s), {len(gdf):,} in total for {n_total:,} requested{extra}, "
        f"from {len(cities):,} {sc.cities} cities ({sc.city_choice} choice) with sigma {sc.sigma_m:g} m and "
        f"{cfg.footprint_m:g} m footprints, no two overlapping; tried {stats.get('candidates', 0):,} candidates "
        f"(rejected: {rej_text}); {median}"
        f"{gdf['epsg'].nunique()} UTM zone(s); {time.perf_counter() - t0:.1f} s. "
        f"Wrote {path}, {map_png.name} and {hist_png.name}: look at the map before downloading."
    )
    return 0
