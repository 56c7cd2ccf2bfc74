from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from export import stats as S


@given(hnp.arrays(np.uint16, st.integers(1, 400)), st.integers(0, 3))
def test_uint16_percentiles_are_exact(values: np.ndarray, nodata: int) -> None:
    bp = S.band_partial(values, nodata)
    kept = values[values != nodata]
    assert bp.count == kept.size
    if kept.size:
        for q in S.PERCENTILES:
            assert S.percentile(bp, q, "uint16") == np.percentile(kept, q, method="lower")
        assert bp.mean == pytest.approx(kept.astype(float).mean())
        assert bp.min == kept.min() and bp.max == kept.max()


@settings(max_examples=60)
@given(hnp.arrays(np.float32, st.integers(2, 300), elements=st.floats(-1e4, 1e4, width=32)), st.integers(1, 5))
def test_merge_of_parts_equals_the_whole(values: np.ndarray, parts: int) -> None:
    whole = S.band_partial(values, None)
    pieces = [S.band_partial(p, None) for p in np.array_split(values, parts)]
    merged = pieces[0]
    for p in pieces[1:]:
        merged = S.merge_band(merged, p)
    assert merged.count == whole.count
    assert merged.mean == pytest.approx(whole.mean, rel=1e-9, abs=1e-6)
    assert merged.m2 == pytest.approx(whole.m2, rel=1e-6, abs=1e-3)
    np.testing.assert_array_equal(merged.bins, whole.bins)
    np.testing.assert_array_equal(merged.counts, whole.counts)


@given(hnp.arrays(np.float32, 64, elements=st.floats(width=32, allow_nan=False, allow_infinity=False)))
def test_float_bins_preserve_order_and_stay_within_a_percent(values: np.ndarray) -> None:
    order = np.argsort(values, kind="stable")
    bins = S.to_bins(values)
    assert np.all(np.diff(bins[order].astype(int)) >= 0)
    back = S.bin_value(bins, "float32")
    big = np.abs(values) > 1e-30  # tiny subnormals share a bin with zero
    assert np.all(np.abs(back[big] - values[big]) <= 0.01 * np.abs(values[big]))


def test_int16_and_nodata_and_nan() -> None:
    v = np.array([-32768, -5, 0, 7, 7, 300], np.int16)
    bp = S.band_partial(v, -32768)
    assert bp.count == 5 and bp.min == -5 and bp.max == 300
    assert S.percentile(bp, 50, "int16") == 7
    f = np.array([np.nan, 1.0, np.inf, 3.0], np.float32)
    assert S.band_partial(f, None).count == 2


def test_block_summary_and_npz_round_trip() -> None:
    rng = np.random.default_rng(0)
    block = rng.integers(0, 1000, size=(3, 4, 2, 8, 8)).astype(np.uint16)
    p = S.partial_of(block, 0)
    q = S.from_arrays(S.to_arrays(p))
    assert S.summary(p, ["a", "b"]) == S.summary(q, ["a", "b"])
    s = S.summary(S.merge_all([(1, p), (0, q)]), ["a", "b"])
    assert s["count"] == [2 * (block[:, :, b] != 0).sum() for b in range(2)]
    flat = block[:, :, 1].ravel()
    assert s["p50"][1] == np.percentile(flat[flat != 0], 50, method="lower")
    assert S.partial_of(block, 0, stride=4).bands[0].count == (block[:, :, 0, ::4, ::4] != 0).sum()
    empty = S.summary(S.partial_of(np.zeros((1, 1, 1, 2, 2), np.uint16), 0), ["x"])
    assert empty["mean"] == [None] and empty["p50"] == [None]
    with pytest.raises(ValueError, match="sample, time, band"):
        S.partial_of(block[0], 0)
