"""CRC32C gives Zarr's values (google-crc32c's), whole or continued, on bytes and on other buffers."""

from __future__ import annotations

from pathlib import Path

import google_crc32c
import numpy as np

from export.checksum import crc32c, file_crc32c


def test_crc32c_matches_google_crc32c() -> None:
    rng = np.random.default_rng(3)
    for n in (0, 1, 7, 4096, 1_000_003):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        want = google_crc32c.value(data)
        assert crc32c(data) == want
        assert crc32c(memoryview(bytearray(data))) == want  # any buffer, no copy needed by the caller
        cut = n // 3
        assert crc32c(data[cut:], crc32c(data[:cut])) == want  # continued, as a shard is checksummed part by part
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value


def test_file_crc32c_reads_in_blocks(tmp_path: Path) -> None:
    data = np.random.default_rng(5).integers(0, 256, 100_003, dtype=np.uint8).tobytes()
    path = tmp_path / "shard"
    path.write_bytes(data)
    assert file_crc32c(path, block=4096) == google_crc32c.value(data)  # many blocks, the last one short
    (tmp_path / "empty").write_bytes(b"")
    assert file_crc32c(tmp_path / "empty") == 0
