from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from export.layout import (
    bands_shard_key,
    check_aligned,
    n_shards,
    sample_order,
    shard_key,
    shard_span,
    shard_spans,
    stable_hash,
)


@given(st.integers(0, 5000), st.integers(1, 300))
def test_spans_tile_the_samples_exactly(n: int, size: int) -> None:
    spans = shard_spans(n, size)
    assert len(spans) == n_shards(n, size)
    covered = [i for s in spans for i in range(s.start, s.stop)]
    assert covered == list(range(n))
    assert all(s.size == size for s in spans[:-1])
    for s in spans:
        assert check_aligned(s.start, s.stop, n, size) == s


@given(st.integers(1, 2000), st.integers(1, 100), st.data())
def test_any_other_range_is_refused(n: int, size: int, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, n - 1))
    stop = data.draw(st.integers(start + 1, n))
    whole = start % size == 0 and stop == min(start + size, n)
    if whole:
        assert check_aligned(start, stop, n, size).start == start
    else:
        with pytest.raises(ValueError, match=r"shard|outside"):
            check_aligned(start, stop, n, size)


def test_refusal_messages_name_the_fix() -> None:
    with pytest.raises(ValueError, match=r"start at a multiple of 64 \(e.g. 64\)"):
        check_aligned(70, 128, 200, 64)
    with pytest.raises(ValueError, match="write whole shards of 64"):
        check_aligned(64, 100, 200, 64)
    with pytest.raises(ValueError, match="outside"):
        check_aligned(192, 256, 200, 64)
    with pytest.raises(ValueError, match="shard_size=0"):
        n_shards(10, 0)
    with pytest.raises(ValueError, match="does not exist"):
        shard_span(4, 200, 64)


def test_sample_order_is_sorted_unique() -> None:
    assert sample_order([9, 3, 3, 7]) == [3, 7, 9]
    with pytest.raises(ValueError, match="negative"):
        sample_order([-1, 2])


def test_keys_are_stable_and_sensitive() -> None:
    span = shard_span(1, 20, 8)
    k = shard_key("L", span, list(range(8, 16)), ["d"] * 8)
    assert k == shard_key("L", span, list(range(8, 16)), ["d"] * 8)
    assert k != shard_key("L", span, list(range(8, 16)), ["d"] * 7 + ["e"])
    assert k != shard_key("M", span, list(range(8, 16)), ["d"] * 8)
    assert stable_hash({"b": 1, "a": [1, 2]}) == stable_hash({"a": [1, 2], "b": 1})
    assert bands_shard_key("s2_l2a", 3) == "s2_l2a/bands/c/3/0/0/0/0"
