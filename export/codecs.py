"""Codec choice for the ``bands`` arrays, as a small frozen spec that turns into Zarr v3 codecs.

Default: Blosc LZ4 with bit-shuffle. Measured on 12-band uint16 264x264 sample-seasons (smooth fields plus
sigma=25 DN noise) on this 2-core machine, single thread (``make bench`` prints the table again):

=====================  =====  =============  ===============
codec                  ratio  compress MB/s  decompress MB/s
=====================  =====  =============  ===============
blosc lz4 bitshuffle   1.67   ~1000          ~2200
blosc zstd3 bitshuffle 1.83   ~250-330       ~600-1600
blosc zstd5 shuffle    1.82   ~115-200       ~2600
zstd 1 (no shuffle)    1.23   ~600-1000      ~450-1200
=====================  =====  =============  ===============

The corpus is written once and read every epoch, and random single-sample reads are bound by decompression,
so the fastest decoder with a good ratio wins; zstd buys 10% less disk for 2-4x slower reads. Every chunk also
carries a CRC32C (Zarr's ``crc32c`` codec), checked by Zarr on every read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Compressor = Literal["blosc-lz4", "blosc-zstd", "zstd", "none"]
Shuffle = Literal["bitshuffle", "shuffle", "noshuffle"]


@dataclass(frozen=True)
class CodecSpec:
    compressor: Compressor = "blosc-lz4"
    level: int = 5
    shuffle: Shuffle = "bitshuffle"
    checksum: bool = True
    """Append Zarr's CRC32C codec to every chunk."""

    def __post_init__(self) -> None:
        if self.compressor not in ("blosc-lz4", "blosc-zstd", "zstd", "none"):
            raise ValueError(f"compressor {self.compressor!r} is unknown; use blosc-lz4, blosc-zstd, zstd or none")
        hi = 22 if self.compressor == "zstd" else 9
        if not 0 <= self.level <= hi:
            raise ValueError(f"level {self.level} is out of range for {self.compressor}; use 0..{hi}")
        if self.shuffle not in ("bitshuffle", "shuffle", "noshuffle"):
            raise ValueError(f"shuffle {self.shuffle!r} is unknown; use bitshuffle, shuffle or noshuffle")

    def zarr_compressors(self) -> list[object]:
        """The bytes-to-bytes codecs (``compressors=`` of ``zarr.create_array``)."""
        from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec

        out: list[object] = []
        if self.compressor.startswith("blosc-"):
            out.append(BloscCodec(cname=self.compressor[6:], clevel=self.level, shuffle=self.shuffle))
        elif self.compressor == "zstd":
            out.append(ZstdCodec(level=self.level))
        if self.checksum:
            out.append(Crc32cCodec())
        return out

    def numcodecs_codec(self) -> object | None:
        """The same compressor as a numcodecs codec (to measure the raw codec speed); None for ``none``."""
        from numcodecs import Blosc, Zstd

        if self.compressor.startswith("blosc-"):
            shuffle = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}
            return Blosc(cname=self.compressor[6:], clevel=self.level, shuffle=shuffle[self.shuffle])
        if self.compressor == "zstd":
            return Zstd(level=self.level)
        return None

    def describe(self) -> str:
        if self.compressor == "none":
            return "none"
        s = f"{self.compressor} level {self.level}"
        return s + (f" {self.shuffle}" if self.compressor.startswith("blosc-") else "")
