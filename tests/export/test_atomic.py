"""A shard write killed with SIGKILL leaves no visible partial shard; the rerun finishes it identically."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from export.layout import bands_shard_key
from export.verify import verify
from export.writer import RefusedWrite, encode_shard, marker_path
from tests.export.conftest import build, stage
from tests.export.test_determinism import tree_digest

ROOT = Path(__file__).resolve().parents[2]

# Runs the shard stage, but parks forever just before s1_rtc's shard 0 file would be renamed into place:
# the temporary file is fully written, s2_l2a's shard 0 is already committed, the marker is not.
KILLED_RUN = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    real = os.replace
    def parked(src, dst):
        if str(dst).endswith("s1_rtc/bands/c/0/0/0/0/0"):
            Path(sys.argv[2]).write_text("parked")
            time.sleep(600)
        return real(src, dst)
    os.replace = parked
    from tests.export.conftest import build
    build(Path(sys.argv[1]))
""")


def test_killed_shard_write_leaves_no_visible_partial_shard(tmp_path: Path) -> None:
    out = stage(tmp_path / "out")
    flag = tmp_path / "parked"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(out), str(flag)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 120
        while not flag.exists():
            assert proc.poll() is None, "the writer exited before reaching the kill point"
            assert time.monotonic() < deadline, "the writer never reached the kill point"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    store = out / "dataset.zarr"
    assert not marker_path(out / "dataset.state", 0).exists()
    assert not (store / bands_shard_key("s1_rtc", 0)).exists()  # only the temporary file holds it
    assert any(p.name.startswith(".tmp-") for p in (store / "s1_rtc" / "bands" / "c").rglob("*"))
    s1 = zarr.open_array(store, path="s1_rtc/bands", mode="r")
    assert np.isnan(s1[0:8]).all()  # not written: fill value, never part of a shard
    problems = verify(out).problems
    assert problems and "unfinished" in problems[0]

    rerun = build(out)
    assert rerun.written == 3 and rerun.kept == 0
    assert verify(out).problems == ["%s: missing; run 'ssl4eo catalog'" % (out / "catalog" / "catalog.json")]
    clean = stage(tmp_path / "clean")
    build(clean)
    leftovers = [p for p in store.rglob("*") if p.name.startswith(".tmp-") or p.name.endswith(".partial")]
    assert leftovers == []
    digest, clean_digest = tree_digest_no_catalog(out), tree_digest_no_catalog(clean)
    assert digest == clean_digest


def tree_digest_no_catalog(out: Path) -> dict[str, str]:
    (out / "catalog").mkdir(exist_ok=True)
    return tree_digest(out)


def test_writer_refuses_partial_shards(tmp_path: Path) -> None:
    out = stage(tmp_path, list(range(1, 11)))
    build(out)
    store = out / "dataset.zarr"
    block = np.ones((4, 4, 4, 16, 16), np.uint16)
    from export.layout import ShardSpan

    with pytest.raises(ValueError, match="write whole shards of 8"):
        encode_shard(store, "s2_l2a/bands", bands_shard_key("s2_l2a", 0), ShardSpan(0, 0, 4), block)
    with pytest.raises(RefusedWrite, match=r"does not hold samples \[0, 8\)"):
        encode_shard(store, "s2_l2a/bands", bands_shard_key("s2_l2a", 1), ShardSpan(0, 0, 8),
                     np.ones((8, 4, 4, 16, 16), np.uint16))
