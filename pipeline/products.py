"""Product registry: which catalog collection, asset keys, bands, resolutions and dtypes make a product.

Pure metadata, no I/O. The defaults follow the real catalogs (Planetary Computer collection ids and asset keys,
Earth Search for Sentinel-2 L1C, DLR EOC for EnMAP), so pointing ``source.url`` at a real service needs no
other change. The embedded archive (``pipeline.archive``) is built from this same table, which is what makes it
look to the fetcher exactly like the real catalogs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["optical", "sar", "hyperspectral"]


@dataclass(frozen=True)
class Band:
    """One band of a product."""

    name: str
    """Band name as written to the outputs (e.g. ``B04``, ``vv``, ``b042``)."""
    asset: str
    """STAC asset key holding this band."""
    resolution_m: float
    """Native ground sampling distance of the asset."""
    index: int = 1
    """1-based band index inside the asset (EnMAP keeps all 224 bands in one asset)."""
    center_nm: float | None = None
    fwhm_nm: float | None = None
    common_name: str | None = None


@dataclass(frozen=True)
class Product:
    """A product: one collection of a catalog and how to read it."""

    name: str
    collection: str
    kind: Kind
    bands: tuple[Band, ...]
    dtype: str
    nodata: float
    resolution_m: float
    """Output grid resolution (the finest band's)."""
    default_patch_px: int
    mask_asset: str | None = None
    """Per-pixel quality asset (S2 SCL, Landsat QA_PIXEL, EnMAP cloud layer), read with nearest resampling."""
    platforms: tuple[str, ...] = ()
    description: str = ""
    providers: tuple[str, ...] = ()
    license: str = "proprietary"
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def band_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bands)

    def band(self, name: str) -> Band:
        for b in self.bands:
            if b.name == name:
                return b
        raise KeyError(f"product {self.name!r} has no band {name!r}; valid bands: {', '.join(self.band_names)}")


# --- Sentinel-2 ------------------------------------------------------------------------------------------------
# (name, centre nm, fwhm nm, resolution m, common name, Earth Search asset key)
_S2 = [
    ("B01", 442.7, 21, 60, "coastal", "coastal"),
    ("B02", 492.4, 66, 10, "blue", "blue"),
    ("B03", 559.8, 36, 10, "green", "green"),
    ("B04", 664.6, 31, 10, "red", "red"),
    ("B05", 704.1, 15, 20, "rededge", "rededge1"),
    ("B06", 740.5, 15, 20, "rededge", "rededge2"),
    ("B07", 782.8, 20, 20, "rededge", "rededge3"),
    ("B08", 832.8, 106, 10, "nir", "nir"),
    ("B8A", 864.7, 21, 20, "nir08", "nir08"),
    ("B09", 945.1, 20, 60, "nir09", "nir09"),
    ("B10", 1373.5, 31, 60, "cirrus", "cirrus"),
    ("B11", 1613.7, 91, 20, "swir16", "swir16"),
    ("B12", 2202.4, 175, 20, "swir22", "swir22"),
]

S2_L2A = Product(
    name="s2_l2a",
    collection="sentinel-2-l2a",
    kind="optical",
    bands=tuple(Band(n, n, r, 1, c, w, cn) for n, c, w, r, cn, _ in _S2 if n != "B10"),
    dtype="uint16",
    nodata=0,
    resolution_m=10,
    default_patch_px=264,
    mask_asset="SCL",
    platforms=("sentinel-2a", "sentinel-2b"),
    description="Sentinel-2 Level-2A surface reflectance, 12 bands (no B10), planetary-computer asset keys",
    providers=("ESA", "Microsoft"),
    license="proprietary",
)

S2_L1C = Product(
    name="s2_l1c",
    collection="sentinel-2-l1c",
    kind="optical",
    bands=tuple(Band(n, es, r, 1, c, w, cn) for n, c, w, r, cn, es in _S2),
    dtype="uint16",
    nodata=0,
    resolution_m=10,
    default_patch_px=264,
    mask_asset=None,
    platforms=("sentinel-2a", "sentinel-2b"),
    description="Sentinel-2 Level-1C top-of-atmosphere reflectance, 13 bands, earth-search asset keys",
    providers=("ESA", "Element 84"),
    license="proprietary",
)

S1_GRD = Product(
    name="s1_grd",
    collection="sentinel-1-grd",
    kind="sar",
    bands=(Band("vv", "vv", 10), Band("vh", "vh", 10)),
    dtype="uint16",
    nodata=0,
    resolution_m=10,
    default_patch_px=264,
    platforms=("sentinel-1a", "sentinel-1c"),
    description="Sentinel-1 GRD IW dual-pol VV+VH amplitude; fetched as sigma0 in dB (20*log10(DN) - K)",
    providers=("ESA", "Microsoft"),
    license="proprietary",
)

S1_RTC = Product(
    name="s1_rtc",
    collection="sentinel-1-rtc",
    kind="sar",
    bands=(Band("vv", "vv", 10), Band("vh", "vh", 10)),
    dtype="float32",
    nodata=-32768,
    resolution_m=10,
    default_patch_px=264,
    platforms=("sentinel-1a", "sentinel-1c"),
    description="Sentinel-1 radiometrically terrain corrected gamma0 (linear power); fetched in dB",
    providers=("ESA", "Catalyst", "Microsoft"),
    license="CC-BY-4.0",
)

# Landsat 8/9 OLI-TIRS Collection 2 (planetary-computer asset keys)
_OLI_SR = [
    ("SR_B1", "coastal", 443), ("SR_B2", "blue", 482), ("SR_B3", "green", 561), ("SR_B4", "red", 655),
    ("SR_B5", "nir08", 865), ("SR_B6", "swir16", 1609), ("SR_B7", "swir22", 2201),
]
_OLI_TOA = [
    ("B1", "coastal", 443), ("B2", "blue", 482), ("B3", "green", 561), ("B4", "red", 655), ("B5", "nir08", 865),
    ("B6", "swir16", 1609), ("B7", "swir22", 2201), ("B8", "pan", 590), ("B9", "cirrus", 1373),
    ("B10", "lwir11", 10895), ("B11", "lwir12", 12005),
]

LANDSAT_OLI_SR = Product(
    name="landsat_oli_sr",
    collection="landsat-c2-l2",
    kind="optical",
    bands=tuple(Band(n, a, 30, 1, c, None, a) for n, a, c in _OLI_SR),
    dtype="uint16",
    nodata=0,
    resolution_m=30,
    default_patch_px=264,
    mask_asset="qa_pixel",
    platforms=("landsat-8", "landsat-9"),
    description="Landsat 8/9 OLI Collection 2 Level-2 surface reflectance, 7 bands",
    providers=("USGS", "Microsoft"),
    license="proprietary",
)

LANDSAT_OLI_TOA = Product(
    name="landsat_oli_toa",
    collection="landsat-c2-l1",
    kind="optical",
    bands=tuple(Band(n, a, 30, 1, c, None, a) for n, a, c in _OLI_TOA),
    dtype="uint16",
    nodata=0,
    resolution_m=30,
    default_patch_px=264,
    mask_asset="qa_pixel",
    platforms=("landsat-8", "landsat-9"),
    description="Landsat 8/9 OLI-TIRS Collection 2 Level-1 (TOA via per-band scale/offset), 11 bands",
    providers=("USGS",),
    license="proprietary",
)


# Landsat 4-5 TM and Landsat 7 ETM+ (Collection 2; same collections as OLI, told apart by platform)
_TM_SR = [("SR_B1", "blue", 485), ("SR_B2", "green", 560), ("SR_B3", "red", 660), ("SR_B4", "nir08", 830),
          ("SR_B5", "swir16", 1650), ("SR_B7", "swir22", 2215)]
_TM_TOA = [("B1", "blue", 485), ("B2", "green", 560), ("B3", "red", 660), ("B4", "nir08", 830),
           ("B5", "swir16", 1650), ("B6", "lwir", 11450), ("B7", "swir22", 2215)]
_ETM_SR = [("SR_B1", "blue", 483), ("SR_B2", "green", 560), ("SR_B3", "red", 662), ("SR_B4", "nir08", 835),
           ("SR_B5", "swir16", 1648), ("SR_B7", "swir22", 2206)]
_ETM_TOA = [("B1", "blue", 483), ("B2", "green", 560), ("B3", "red", 662), ("B4", "nir08", 835),
            ("B5", "swir16", 1648), ("B6_VCID_1", "lwir", 11335), ("B6_VCID_2", "lwir_high", 11335),
            ("B7", "swir22", 2206), ("B8", "pan", 706)]


def _landsat(name: str, collection: str, table: list, platforms: tuple[str, ...], what: str) -> Product:
    return Product(
        name=name, collection=collection, kind="optical",
        bands=tuple(Band(n, a, 30, 1, c, None, a) for n, a, c in table), dtype="uint16", nodata=0, resolution_m=30,
        default_patch_px=264, mask_asset="qa_pixel", platforms=platforms, description=what,
        providers=("USGS", "Microsoft") if collection.endswith("l2") else ("USGS",), license="proprietary",
    )


LANDSAT_TM_SR = _landsat("landsat_tm_sr", "landsat-c2-l2", _TM_SR, ("landsat-4", "landsat-5"),
                         "Landsat 4-5 TM Collection 2 Level-2 surface reflectance, 6 bands")
LANDSAT_TM_TOA = _landsat("landsat_tm_toa", "landsat-c2-l1", _TM_TOA, ("landsat-4", "landsat-5"),
                          "Landsat 4-5 TM Collection 2 Level-1 (TOA via per-band scale/offset), 7 bands")
LANDSAT_ETM_SR = _landsat("landsat_etm_sr", "landsat-c2-l2", _ETM_SR, ("landsat-7",),
                          "Landsat 7 ETM+ Collection 2 Level-2 surface reflectance, 6 bands")
LANDSAT_ETM_TOA = _landsat("landsat_etm_toa", "landsat-c2-l1", _ETM_TOA, ("landsat-7",),
                           "Landsat 7 ETM+ Collection 2 Level-1 (TOA via per-band scale/offset), 9 bands")


def _enmap_bands() -> tuple[Band, ...]:
    """224 EnMAP bands: 91 VNIR (418-993 nm) and 133 SWIR (902-2446 nm), approximating the sensor's sampling."""
    out = []
    for i in range(224):
        if i < 91:
            c = 418.0 + i * (993.0 - 418.0) / 90
            w = 6.5 + 2.0 * i / 90
        else:
            j = i - 91
            c = 902.0 + j * (2446.0 - 902.0) / 132
            w = 9.0 + 2.0 * j / 132
        out.append(Band(f"b{i + 1:03d}", "image", 30, i + 1, round(c, 2), round(w, 2)))
    return tuple(out)


ENMAP_L2A = Product(
    name="enmap_l2a",
    collection="ENMAP_HSI_L2A",
    kind="hyperspectral",
    bands=_enmap_bands(),
    dtype="int16",
    nodata=-32768,
    resolution_m=30,
    default_patch_px=128,
    mask_asset="quality_cloud",
    platforms=("enmap",),
    description="EnMAP HSI Level-2A surface reflectance, 224 bands in one COG (DLR EOC conventions)",
    providers=("DLR",),
    license="proprietary",
)

# 1-based band indices kept when the water-vapour absorption bands are dropped (224 -> 202), as torchgeo
# and SpectralEarth do: 1-126, 142-160, 168-224.
ENMAP_KEEP_BANDS = tuple(list(range(1, 127)) + list(range(142, 161)) + list(range(168, 225)))

PRODUCTS: dict[str, Product] = {
    p.name: p
    for p in (S2_L2A, S2_L1C, S1_GRD, S1_RTC, LANDSAT_OLI_SR, LANDSAT_OLI_TOA, LANDSAT_TM_SR, LANDSAT_TM_TOA,
              LANDSAT_ETM_SR, LANDSAT_ETM_TOA, ENMAP_L2A)
}


def get_product(name: str) -> Product:
    """The product called ``name``; a KeyError that lists the valid names otherwise."""
    try:
        return PRODUCTS[name]
    except KeyError:
        raise KeyError(f"unknown product {name!r}; valid products: {', '.join(sorted(PRODUCTS))}") from None
