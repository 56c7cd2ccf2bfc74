"""The embedded local archive: realistic scene COGs + STAC items that mimic the real catalogs.

Layout of the pure core and the I/O shell:
- ``sites``: the archive's cities and their UTM tiles (pure);
- ``truth``: the documented truth function, pixel value = f(ground position, band, acquisition) (pure);
- ``plan``: which scenes exist, their grids, cloud cover and nodata edges (pure);
- ``build``: writes COGs, STAC items and the stac-geoparquet index (I/O);
- ``serve``: the loopback COG server with range requests and the pgstac STAC API (processes).
"""
