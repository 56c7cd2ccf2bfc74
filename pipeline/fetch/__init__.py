"""Fetch: for each location, pick one acquisition per product and season and read exact co-registered patches.

Pure cores: ``grid`` (one UTM grid per location), ``seasons`` (windows, ranking), ``quality`` (cloud/nodata
fractions). The only module that touches rasterio/GDAL is ``read``. ``location`` composes them per location behind
the :class:`~pipeline.sources.Source` and :class:`~pipeline.fetch.read.Reader` protocols.
"""
