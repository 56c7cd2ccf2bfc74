"""Export stage: the sharded Zarr v3 dataset, its parquet index, the STAC catalog of the outputs, verify, report.

The core never sees the config: the stage glue in ``pipeline.stages`` turns it into explicit arguments.
Pure modules (no I/O): :mod:`export.layout`, :mod:`export.stats`, :mod:`export.codecs`, :mod:`export.geometry`,
:mod:`export.model`, :mod:`export.columns`, :mod:`export.shardcodec`, :mod:`export.stac_items`. The rest read or
write files: :mod:`export.shard` (the stage), :mod:`export.writer` and :mod:`export.stream` (one shard task),
:mod:`export.store`, :mod:`export.index`, :mod:`export.catalog`, :mod:`export.verify`, :mod:`export.report`.
"""

from export.codecs import CodecSpec
from export.layout import CATALOG, INDEX, STATE, STORE
from export.model import ExportSpec, ProductLayout, product_layout

__all__ = ["CATALOG", "INDEX", "STATE", "STORE", "CodecSpec", "ExportSpec", "ProductLayout", "product_layout"]
